// Package prio keeps the host's own work out of the way of the processes
// it captures (HCL `priority = "background"`, the default).
//
// While every module keeps up, the host's threads run at SCHED_IDLE: HTTP
// decoding, formatting and writing happen in CPU time the machine would
// otherwise leave idle, and never preempt the captured programs. On a
// machine they saturate that matters twice: a program preempted by the
// host also stops feeding its peer, which then idles (make bench measured
// 8% more requests/s for nginx and wrk with the host in the background).
// When a module's input backs up, the threads return to normal priority
// until every module has kept up for a while, so a busy machine slows the
// capture down but does not starve it. Plugins, which drain the kernel's
// buffers, always run at normal priority (Normalize).
package prio

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// calmFor is how long every module must have kept up before the host goes
// back to the background.
const calmFor = 2 * time.Second

// Governor moves the host's threads between background and normal
// priority. Its methods are safe for concurrent use; a nil Governor does
// nothing.
type Governor struct {
	mu           sync.Mutex
	behind       map[string]bool
	bg           bool // the threads run at SCHED_IDLE
	stopped      bool
	calmSince    time.Time
	boosts       uint64
	pluginBoosts uint64
	err          error
	now          func() time.Time
	// idle tells whether the host still runs at SCHED_IDLE: a plugin may
	// have returned it to normal priority (pluginhost.Transport.BoostPID).
	idle func() bool
}

// New puts the host's threads in the background and returns the Governor
// keeping them there while the modules keep up.
func New() (*Governor, error) {
	if os.Geteuid() != 0 {
		// Leaving SCHED_IDLE again takes privilege: without it the host
		// would be stuck in the background.
		return nil, errors.New("running in the background needs root")
	}
	g := &Governor{behind: map[string]bool{}, now: time.Now, idle: mainIdle}
	if err := setThreads("self", unix.SCHED_IDLE); err != nil {
		return nil, errors.Join(fmt.Errorf("running in the background: %w", err), setThreads("self", unix.SCHED_NORMAL))
	}
	g.bg = true
	return g, nil
}

// mainIdle tells whether the host's main thread runs at SCHED_IDLE.
func mainIdle() bool {
	attr, err := unix.SchedGetAttr(os.Getpid(), 0)
	return err != nil || attr.Policy == unix.SCHED_IDLE
}

// Report says whether module is behind: input waiting beyond what it is
// handling now. A module behind brings the host to normal priority at
// once; the host goes back to the background once no module has been
// behind for calmFor. A plugin may have brought it to normal priority
// already (its kernel buffer filled before the host got to run): Report
// notices, and counts it.
func (g *Governor) Report(module string, behind bool) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bg && !g.stopped && !g.idle() {
		g.pluginBoosts++
		g.calmSince = time.Time{}
		g.set(false) // every thread, those the plugin missed too

	}
	if behind {
		g.behind[module] = true
	} else {
		delete(g.behind, module)
	}
	switch {
	case len(g.behind) > 0:
		g.calmSince = time.Time{}
		if g.bg {
			g.boosts++
			g.set(false)
		}
	case !g.bg && g.calmSince.IsZero():
		g.calmSince = g.now()
	case !g.bg && g.now().Sub(g.calmSince) >= calmFor:
		g.set(true)
	}
}

// Stop returns the host to normal priority for good: shutting down flushes
// what is queued, which must not wait for idle CPU.
func (g *Governor) Stop() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set(false)
	g.stopped = true
}

// Stats returns how often the host had to leave the background, by its
// own decision and by a plugin's, and the error that made it stop
// switching, if any.
func (g *Governor) Stats() (boosts, pluginBoosts uint64, err error) {
	if g == nil {
		return 0, 0, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.boosts, g.pluginBoosts, g.err
}

func (g *Governor) set(bg bool) {
	if g.stopped || g.bg == bg {
		return
	}
	policy := unix.SCHED_NORMAL
	if bg {
		policy = unix.SCHED_IDLE
	}
	if err := setThreads("self", policy); err != nil {
		// Stay at normal priority: a capture that cannot be put back in
		// the foreground must not stay in the background.
		g.err = errors.Join(err, setThreads("self", unix.SCHED_NORMAL))
		g.stopped, g.bg = true, false
		return
	}
	g.bg = bg
}

// Normalize sets every thread of process pid to normal priority: a plugin
// launched by a thread in the background inherits SCHED_IDLE.
func Normalize(pid int) error {
	return setThreads(strconv.Itoa(pid), unix.SCHED_NORMAL)
}

// threads returns the thread ids of process proc ("self" or a pid).
func threads(proc string) ([]int, error) {
	tasks, err := os.ReadDir("/proc/" + proc + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(tasks))
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// setThreads sets the scheduling policy of every thread of process proc.
// A thread started meanwhile takes the policy of the thread that started
// it.
func setThreads(proc string, policy int) error {
	// A thread created while the list is walked inherits the policy of
	// the thread that created it, which may not be set yet: walk again
	// until a pass meets no thread it has not set.
	set := map[int]bool{}
	for range maxPasses {
		tids, err := threads(proc)
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if set[tid] {
				continue
			}
			fresh, set[tid] = true, true
			attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(policy)}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("setting the scheduling policy of thread %d of process %s: %w", tid, proc, err)
			}
		}
		if !fresh {
			return nil
		}
	}
	return nil
}

// maxPasses bounds setThreads' walks of a process busy creating threads.
const maxPasses = 8
