package opensslmod

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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

// fallbackTarget is one probed binary and the fallback program of its
// layout slot.
type fallbackTarget struct {
	path     string
	symbols  []string
	prog     *ebpf.Program
	progName string
}

// fallback attaches and detaches the fallback probes. Its methods are
// safe for concurrent use; run's loop is its only writer of links.
type fallback struct {
	targets []fallbackTarget
	pending *ebpf.Map
	stats   *ebpf.Map
	logger  hclog.Logger
	stop    chan struct{}
	done    chan struct{}

	mu          sync.Mutex
	links       []link.Link
	probes      []sdk.ProbeInfo
	since       time.Time // when the links were attached
	attachments uint64
	attached    time.Duration // before since
}

// newFallback finds the programs and maps of the fallback in obj for
// targets (index: layout slot).
func newFallback(obj *ebpfbase.Object, targets []target, logger hclog.Logger) (*fallback, error) {
	f := &fallback{logger: logger}
	var err error
	if f.pending, err = obj.Map(pendingMap); err != nil {
		return nil, fmt.Errorf("starting the key modes' fallback: %w", err)
	}
	if f.stats, err = obj.Map(opensslStatsMap); err != nil {
		return nil, fmt.Errorf("starting the key modes' fallback: %w", err)
	}
	for i, t := range targets {
		name := progFallback + slotSuffix(i)
		prog, err := obj.Program(name)
		if err != nil {
			return nil, fmt.Errorf("starting the key modes' fallback: %w", err)
		}
		ft := fallbackTarget{path: t.Path, prog: prog, progName: name}
		for _, s := range fallbackSymbols {
			if slices.Contains(t.Symbols, s) {
				ft.symbols = append(ft.symbols, s)
			}
		}
		f.targets = append(f.targets, ft)
	}
	return f, nil
}

// start attaches the probes (the window after start) and starts the loop
// that detaches and attaches them again. An attachment that fails is an
// error naming the symbol and the binary.
func (f *fallback) start() error {
	if err := f.attach(); err != nil {
		return err
	}
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go f.run()
	return nil
}

// close stops the loop and detaches the probes. It may be called more
// than once, and on a fallback never started.
func (f *fallback) close() {
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

// attach attaches the fallback probes on every target, unless they are.
func (f *fallback) attach() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links != nil {
		return nil
	}
	var links []link.Link
	var probes []sdk.ProbeInfo
	fail := func(err error) error {
		for _, l := range links {
			_ = l.Close()
		}
		return err
	}
	for _, t := range f.targets {
		ex, err := link.OpenExecutable(t.path)
		if err != nil {
			return fail(fmt.Errorf("opening %s for the key modes' fallback probes: %w", t.path, err))
		}
		for _, s := range t.symbols {
			l, err := ex.Uprobe(s, t.prog, nil)
			if err != nil {
				return fail(fmt.Errorf("attaching uprobe %s to %s (key modes' fallback): %w", s, t.path, err))
			}
			links = append(links, l)
			probes = append(probes, sdk.ProbeInfo{Program: t.progName, Kind: "uprobe", Target: s, Binary: t.path})
		}
	}
	f.links, f.probes, f.since = links, probes, time.Now()
	f.attachments++
	return nil
}

// detach closes the fallback probes' links, if attached. They are listed
// until closed: closing a uprobe waits for the kernel to let go of it.
// Only run's loop, and close once the loop has ended, call it.
func (f *fallback) detach() {
	f.mu.Lock()
	links := f.links
	f.mu.Unlock()
	for _, l := range links {
		_ = l.Close()
	}
	f.mu.Lock()
	if links != nil {
		f.attached += time.Since(f.since)
	}
	f.links, f.probes = nil, nil
	f.mu.Unlock()
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
	return slices.Clone(f.probes)
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
			if err := f.attach(); err != nil {
				if !failing {
					f.logger.Error("sessions whose handshake was not seen are keyed only at SSL_free", "error", err)
				}
				failing = true
				continue
			}
			failing = false
			lastActive = time.Now()
			f.logger.Debug("fallback probes attached: a session's handshake was not seen")
		case !need && f.isAttached() && time.Since(lastActive) >= fallbackQuiet:
			began := time.Now()
			f.detach()
			f.logger.Debug("fallback probes detached: no session left to key", "took", time.Since(began))
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
