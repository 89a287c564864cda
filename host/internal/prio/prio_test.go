package prio

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// allThreads reports whether every thread of proc has policy.
func allThreads(t *testing.T, proc string, policy int) bool {
	t.Helper()
	ps, err := policies(proc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p != policy {
			return false
		}
	}
	return len(ps) > 0
}

func TestGovernor(t *testing.T) {
	harness.RequirePrivileges(t)
	g, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer setThreads("self", unix.SCHED_NORMAL)
	clock := time.Unix(1000, 0)
	g.now = func() time.Time { return clock }
	if !allThreads(t, "self", unix.SCHED_IDLE) {
		t.Fatalf("after New: %v, want every thread at SCHED_IDLE", must(policies("self")))
	}

	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_IDLE) {
		t.Fatal("a module keeping up took the host out of the background")
	}
	g.Report("openssl", true)
	if !allThreads(t, "self", unix.SCHED_NORMAL) {
		t.Fatalf("a module behind: %v, want every thread at SCHED_NORMAL", must(policies("self")))
	}
	// Threads started now inherit normal priority.
	runtime.LockOSThread()
	g.Report("bash", false)
	g.Report("openssl", false) // calm from now
	clock = clock.Add(calmFor / 2)
	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_NORMAL) {
		t.Fatal("back in the background before the modules kept up for calmFor")
	}
	g.Report("bash", true) // not calm after all
	g.Report("bash", false)
	clock = clock.Add(calmFor - time.Millisecond)
	g.Report("bash", false)
	if !allThreads(t, "self", unix.SCHED_NORMAL) {
		t.Fatal("the calm period did not start over after a module fell behind")
	}
	clock = clock.Add(time.Millisecond)
	g.Report("bash", false)
	if !allThreads(t, "self", unix.SCHED_IDLE) {
		t.Fatalf("calm for %v: %v, want every thread at SCHED_IDLE", calmFor, must(policies("self")))
	}
	runtime.UnlockOSThread()
	// One boost: the second module fell behind while the host was
	// already in the foreground.
	if boosts, _, err := g.Stats(); boosts != 1 || err != nil {
		t.Errorf("Stats = %d, %v; want 1 boost, no error", boosts, err)
	}

	g.Stop()
	g.Report("openssl", false)
	clock = clock.Add(time.Hour)
	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_NORMAL) {
		t.Error("after Stop the host went back to the background")
	}
}

// TestGovernorPluginBoost: a plugin returned the host to normal priority
// (its main thread at least): the next Report counts it, sets every
// thread to normal, and the host goes back to the background once the
// modules kept up for calmFor, as after a boost of its own.
func TestGovernorPluginBoost(t *testing.T) {
	harness.RequirePrivileges(t)
	g, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer setThreads("self", unix.SCHED_NORMAL)
	clock := time.Unix(1000, 0)
	g.now = func() time.Time { return clock }
	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_IDLE) {
		t.Fatal("a module keeping up took the host out of the background")
	}
	// What a plugin does (sdk/internal/sched.Normal) to the main thread.
	normal := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
	if err := unix.SchedSetAttr(os.Getpid(), &normal, 0); err != nil {
		t.Fatal(err)
	}
	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_NORMAL) {
		t.Fatalf("after a plugin's boost: %v, want every thread at SCHED_NORMAL", must(policies("self")))
	}
	if boosts, byPlugins, err := g.Stats(); boosts != 0 || byPlugins != 1 || err != nil {
		t.Errorf("Stats = %d, %d, %v; want 0 boosts of its own, 1 by a plugin, no error", boosts, byPlugins, err)
	}
	clock = clock.Add(calmFor)
	g.Report("openssl", false)
	if !allThreads(t, "self", unix.SCHED_IDLE) {
		t.Fatalf("calm for %v after a plugin's boost: %v, want every thread at SCHED_IDLE", calmFor, must(policies("self")))
	}
}

// TestNormalize: a child started from a thread in the background runs
// there too until Normalize.
func TestNormalize(t *testing.T) {
	harness.RequirePrivileges(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	idle := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, &idle, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := itoa(cmd.Process.Pid)
	if !allThreads(t, pid, unix.SCHED_IDLE) {
		t.Fatalf("the child did not inherit SCHED_IDLE (%v): the test proves nothing", must(policies(pid)))
	}
	if err := Normalize(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if !allThreads(t, pid, unix.SCHED_NORMAL) {
		t.Errorf("after Normalize: %v, want SCHED_NORMAL", must(policies(pid)))
	}
}

func TestNewNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root; the refusal is for other users")
	}
	if _, err := New(); err == nil {
		t.Error("New succeeded without root: the host could not leave the background")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func itoa(n int) string { return strconv.Itoa(n) }

// policies returns the scheduling policy of each thread of process proc
// ("self" or a pid).
func policies(proc string) (map[int]int, error) {
	tids, err := threads(proc)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int, len(tids))
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[tid] = int(attr.Policy)
	}
	return out, nil
}
