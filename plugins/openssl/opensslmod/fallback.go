package opensslmod

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// The key modes read a session's secrets where its handshake ends
// (SSL_do_handshake's return) and, for a session never keyed, at SSL_free.
// A session whose handshake ran inside SSL_write/SSL_read, or that began
// before the module, is keyed in between by the fallback: entry probes on
// SSL_write, SSL_read and their _ex forms that the module attaches only
// while such a session may exist, because a uprobe costs its trap on
// every call whatever its program does (see "Key modes" in doc.go for
// the figures). fallback decides when.

// Counters of the fallback.
const (
	// CounterKeysLate counts sessions keyed by the fallback probes on
	// SSL_write/SSL_read (their handshake was not seen), an information
	// counter.
	CounterKeysLate = sdk.InfoCounterPrefix + "tls_keys_fallback"
	// CounterKeysAtFree counts sessions keyed only when SSL_free freed
	// them, an information counter.
	CounterKeysAtFree = sdk.InfoCounterPrefix + "tls_keys_at_free"
	// CounterFallbackAttached counts the times the fallback probes were
	// attached, an information counter.
	CounterFallbackAttached = sdk.InfoCounterPrefix + "tls_keys_fallback_attached"
	// CounterFallbackMillis is how long the fallback probes have been
	// attached in all, in milliseconds, an information counter.
	CounterFallbackMillis = sdk.InfoCounterPrefix + "tls_keys_fallback_ms"
)

// Values of kern/openssl_kern.c.
const (
	progFallback        = "uprobe_ssl_keys" // + slotSuffix(slot)
	pendingMap          = "openssl_pending"
	statKeysLate        = 4
	statKeysAtFree      = 5
	statFallbackUnkeyed = 6
)

// fallbackSymbols are the calls the fallback probes attach to, each taking
// the session as its first argument.
var fallbackSymbols = []string{symWrite, symRead, symWriteEx, symReadEx}

// When the fallback probes are attached. They are at start (sessions of
// an earlier start move data), and whenever openssl_pending holds a
// session SSL_new made that entered no SSL_do_handshake within
// fallbackGrace (a client letting SSL_write drive its handshake) or was
// not keyed fallbackHandshakeGrace after it last entered it (a program
// finishing its handshake through SSL_read). They are detached once they
// saw no session to key for fallbackQuiet and no pending session needs
// them. A pending session that kept them attached fallbackGiveUp without
// being keyed is dropped from openssl_pending (SSL_free still keys it).
const (
	fallbackTick           = 100 * time.Millisecond
	fallbackGrace          = 200 * time.Millisecond
	fallbackHandshakeGrace = 2 * time.Second
	fallbackQuiet          = 500 * time.Millisecond
	fallbackGiveUp         = 10 * time.Second
)

// sessionKey is struct tls_session_key.
type sessionKey struct {
	TGID     uint32
	Reserved uint32
	Session  uint64
}

// pendingSession is struct openssl_pending.
type pendingSession struct {
	CreatedNS   uint64
	HandshakeNS uint64
}

// fallbackObject is what the fallback needs of the loaded object
// (*ebpfbase.Object): it attaches uprobe_multi links, whose detach costs
// one RCU grace period per file, side by side, where a perf-event uprobe
// costs one each, serially (about 70 ms: a second for the probes of a
// few files, each time the probes go).
type fallbackObject interface {
	AttachUprobes(path string, probes []ebpfbase.Probe) (func() error, error)
	FoundFiles() []ebpfbase.FoundFile
	AttachFoundUprobes(id uint64, probes []ebpfbase.Probe) (func() error, error)
}

// fallbackTarget is one binary of the spec and the fallback probes of its
// layout slot, which its copies found node-wide get too.
type fallbackTarget struct {
	path   string
	probes []ebpfbase.Probe
}

// fallbackLink is the probes attached to one file.
type fallbackLink struct {
	release func() error
	probes  []sdk.ProbeInfo
}

// fallback attaches and detaches the fallback probes: on every binary of
// the spec and every file node-wide discovery probes (a container's own
// copy of libssl), so that a session older than the module in any
// probed process is keyed. Its methods are safe for concurrent use;
// run's loop is its only writer of links.
type fallback struct {
	obj     fallbackObject
	targets []fallbackTarget // by layout slot
	pending *ebpf.Map        // the module's own handles: valid until close
	stats   *ebpf.Map
	logger  hclog.Logger
	stop    chan struct{}
	done    chan struct{}
	failed  map[uint64]bool // found files whose probes did not attach (logged once)

	mu          sync.Mutex
	links       map[string]fallbackLink // by file: "spec:SLOT" or "found:ID"; nil when detached
	since       time.Time               // when the links were attached
	attachments uint64
	attached    time.Duration // before since
}

// newFallback finds the maps of the fallback in obj for targets (index:
// layout slot). It holds handles of its own on them (ebpf.Map.Clone), so
// that its loop never reads a map the base has closed meanwhile.
func newFallback(obj *ebpfbase.Object, targets []target, logger hclog.Logger) (*fallback, error) {
	f := &fallback{obj: obj, logger: logger, failed: map[uint64]bool{}}
	for _, m := range []struct {
		name string
		to   **ebpf.Map
	}{{pendingMap, &f.pending}, {opensslStatsMap, &f.stats}} {
		em, err := obj.Map(m.name)
		if err == nil {
			*m.to, err = em.Clone()
		}
		if err != nil {
			f.closeMaps()
			return nil, fmt.Errorf("starting the key modes' fallback: %w", err)
		}
	}
	for i, t := range targets {
		ft := fallbackTarget{path: t.Path}
		for _, s := range fallbackSymbols {
			if slices.Contains(t.Symbols, s) {
				ft.probes = append(ft.probes, ebpfbase.Probe{
					ID: fmt.Sprintf("fallback%d%s", i, s), Section: "uprobe/" + s, Program: progFallback + slotSuffix(i), Symbol: s,
				})
			}
		}
		f.targets = append(f.targets, ft)
	}
	return f, nil
}

// closeMaps closes the fallback's map handles.
func (f *fallback) closeMaps() {
	for _, m := range []*ebpf.Map{f.pending, f.stats} {
		if m != nil {
			_ = m.Close()
		}
	}
}

// start attaches the probes (the window after start) and starts the loop
// that detaches and attaches them again. A spec binary whose probes fail
// to attach is an error naming the symbols and the binary.
func (f *fallback) start() error {
	began := time.Now()
	if err := f.attach(); err != nil {
		return err
	}
	f.logger.Debug("fallback probes attached for the window after start", "files", f.files(), "took", time.Since(began).Round(time.Microsecond).String())
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go f.run()
	return nil
}

// end stops the loop, detaches the probes and keeps them detached. It
// may be called more than once, and on a fallback never started: the
// module calls it when Run ends (before the base detaches anything) and
// again when it is closed.
func (f *fallback) end() {
	if f == nil {
		return
	}
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
	f.detach()
}

// close ends the fallback and closes its map handles.
func (f *fallback) close() {
	if f == nil {
		return
	}
	f.end()
	f.closeMaps()
	f.pending, f.stats = nil, nil
}

// attach attaches the fallback probes on every spec binary, unless they
// are attached, and on every file found node-wide not probed yet; it
// releases the links of found files discovery let go of. A spec binary
// that fails is an error (nothing is attached then); a found file that
// fails is logged once and left out.
func (f *fallback) attach() error {
	f.mu.Lock()
	links := f.links
	f.mu.Unlock()
	fresh := links == nil
	if fresh {
		links = map[string]fallbackLink{}
		for i, t := range f.targets {
			if len(t.probes) == 0 {
				continue
			}
			release, err := f.obj.AttachUprobes(t.path, t.probes)
			if err != nil {
				releaseAll(links)
				return fmt.Errorf("attaching the key modes' fallback probes: %w", err)
			}
			links["spec:"+strconv.Itoa(i)] = fallbackLink{release: release, probes: probeInfos(t.probes, t.path)}
		}
	}
	found := f.obj.FoundFiles()
	current := make(map[string]bool, len(found))
	added := map[string]fallbackLink{}
	for _, ff := range found {
		key := "found:" + strconv.FormatUint(ff.ID, 10)
		current[key] = true
		if _, ok := links[key]; ok || f.failed[ff.ID] {
			continue
		}
		slot := slices.IndexFunc(f.targets, func(t fallbackTarget) bool { return t.path == ff.Binary })
		if slot < 0 || len(f.targets[slot].probes) == 0 {
			continue
		}
		release, err := f.obj.AttachFoundUprobes(ff.ID, f.targets[slot].probes)
		switch {
		case errors.Is(err, ebpfbase.ErrFileReleased):
			continue
		case err != nil:
			f.failed[ff.ID] = true
			f.logger.Error("a file found node-wide gets no fallback probes: its sessions whose handshake was not seen are keyed only at SSL_free",
				"path", ff.Name, "pid", ff.PID, "error", err)
			continue
		}
		added[key] = fallbackLink{release: release, probes: probeInfos(f.targets[slot].probes, fmt.Sprintf("%s (pid %d)", ff.Name, ff.PID))}
	}
	gone := map[string]fallbackLink{}
	f.mu.Lock()
	if fresh {
		f.links, f.since = links, time.Now()
		f.attachments++
	}
	maps.Copy(f.links, added)
	for key, l := range f.links {
		if strings.HasPrefix(key, "found:") && !current[key] {
			gone[key] = l
			delete(f.links, key)
		}
	}
	f.mu.Unlock()
	releaseAll(gone)
	return nil
}

// probeInfos describes probes on binary.
func probeInfos(probes []ebpfbase.Probe, binary string) []sdk.ProbeInfo {
	out := make([]sdk.ProbeInfo, 0, len(probes))
	for _, p := range probes {
		out = append(out, sdk.ProbeInfo{Program: p.Program, Kind: "uprobe", Target: p.Symbol, Binary: binary})
	}
	return out
}

// releaseAll releases links, files side by side (each waits for an RCU
// grace period).
func releaseAll(links map[string]fallbackLink) {
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.release() }()
	}
	wg.Wait()
}

// detach releases the fallback probes' links, if attached. They are
// listed until released. Only run's loop, and end once the loop has
// ended, call it.
func (f *fallback) detach() {
	f.mu.Lock()
	links := f.links
	f.mu.Unlock()
	releaseAll(links)
	f.mu.Lock()
	if links != nil {
		f.attached += time.Since(f.since)
	}
	f.links = nil
	f.mu.Unlock()
}

// files is the number of files the probes are attached to.
func (f *fallback) files() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.links)
}

// isAttached reports whether the fallback probes are attached.
func (f *fallback) isAttached() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links != nil
}

// listProbes describes the fallback probes attached now.
func (f *fallback) listProbes() []sdk.ProbeInfo {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sdk.ProbeInfo
	for _, l := range f.links {
		out = append(out, l.probes...)
	}
	return out
}

// usage returns how many times the probes were attached and for how long
// in all.
func (f *fallback) usage() (uint64, time.Duration) {
	if f == nil {
		return 0, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.attached
	if f.links != nil {
		d += time.Since(f.since)
	}
	return f.attachments, d
}

// run is the loop: every fallbackTick, attach or detach.
func (f *fallback) run() {
	defer close(f.done)
	tick := time.NewTicker(fallbackTick)
	defer tick.Stop()
	lastActive := time.Now() // the window after start
	var lastSeen uint64
	failing := false
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		if seen := f.seen(); seen != lastSeen {
			lastSeen, lastActive = seen, time.Now()
		}
		need := f.scan(monotonicNow())
		switch {
		case need && !f.isAttached():
			began := time.Now()
			if err := f.attach(); err != nil {
				if !failing {
					f.logger.Error("sessions whose handshake was not seen are keyed only at SSL_free", "error", err)
				}
				failing = true
				continue
			}
			failing = false
			lastActive = time.Now()
			f.logger.Debug("fallback probes attached: a session's handshake was not seen",
				"files", f.files(), "took", time.Since(began).Round(time.Microsecond).String())
		case !need && f.isAttached() && time.Since(lastActive) >= fallbackQuiet:
			began, files := time.Now(), f.files()
			f.detach()
			f.logger.Debug("fallback probes detached: no session left to key", "files", files, "took", time.Since(began).Round(time.Microsecond).String())
		case f.isAttached():
			// files found node-wide since, and those let go of
			_ = f.attach()
		}
	}
}

// seen sums the kernel's counts of what the fallback probes did: sessions
// keyed and calls on sessions not keyed yet. While it moves, they are
// useful.
func (f *fallback) seen() uint64 {
	var n uint64
	for _, idx := range []uint32{statKeysLate, statFallbackUnkeyed} {
		var per []uint64
		if err := f.stats.Lookup(idx, &per); err != nil {
			continue
		}
		for _, v := range per {
			n += v
		}
	}
	return n
}

// scan reports whether a pending session needs the fallback probes at
// monotonic time now (ns), and drops those given up on or whose process
// is gone.
func (f *fallback) scan(now uint64) bool {
	var (
		k    sessionKey
		v    pendingSession
		drop []sessionKey
		need bool
	)
	it := f.pending.Iterate()
	for it.Next(&k, &v) {
		switch pendingNeed(now, v) {
		case pendingGiveUp:
			drop = append(drop, k)
		case pendingNeeds:
			if processExists(k.TGID) {
				need = true
			} else {
				drop = append(drop, k)
			}
		}
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		f.logger.Debug("reading the pending sessions", "error", err)
	}
	for _, k := range drop {
		_ = f.pending.Delete(k)
	}
	return need
}

// What a pending session asks of the fallback.
const (
	pendingWaits  = iota // its handshake may still be seen
	pendingNeeds         // only the fallback (or SSL_free) can key it
	pendingGiveUp        // the fallback had its chance: forget it
)

// pendingNeed tells what pending session v asks at monotonic time now.
func pendingNeed(now uint64, v pendingSession) int {
	from, grace := v.CreatedNS, fallbackGrace
	if v.HandshakeNS != 0 {
		from, grace = v.HandshakeNS, fallbackHandshakeGrace
	}
	switch age := time.Duration(now - from); {
	case now < from || age < grace:
		return pendingWaits
	case age < grace+fallbackGiveUp:
		return pendingNeeds
	default:
		return pendingGiveUp
	}
}

// processExists reports whether process tgid is still running.
func processExists(tgid uint32) bool {
	_, err := os.Stat("/proc/" + strconv.FormatUint(uint64(tgid), 10))
	return err == nil
}

// monotonicNow is the clock of bpf_ktime_get_ns, in nanoseconds.
func monotonicNow() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano())
}
