package ebpfbase

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ecaphost/ecaphost/sdk"
)

const (
	// counterInterval is how often Run reports the loss counters.
	counterInterval = 500 * time.Millisecond
	// drainTimeout bounds how long Run keeps draining after Stop while
	// the kernel keeps producing.
	drainTimeout = time.Second
)

// recordReader is a ring buffer or perf reader, or a fake in tests.
type recordReader interface {
	// read fills s.raw (and s.lost) with the next record, reusing the
	// buffers of s. It returns an error wrapping ErrFlushed after flush
	// once the records available at that time are read, and os.ErrClosed
	// after close.
	read(s *slot) error
	flush() error
	close() error
}

// slot is the record a source's reader goroutine reads and handles; its
// buffers are reused from record to record.
type slot struct {
	src  *source
	raw  []byte
	lost uint64
	rb   ringbuf.Record
	pr   perf.Record
}

type source struct {
	m    *ebpf.Map
	name string
	rd   recordReader
	perf bool
	slot slot // the reader goroutine's only record
}

// ringReader reads a ring buffer. With poll set, the kernel side batches
// wake-ups (ecap_wakeup_bytes) and a read waits at most poll, so records
// below the wake-up threshold are still read promptly. The deadline only
// matters when the ring is empty, so it is renewed once it has passed, not
// per record.
type ringReader struct {
	rd      *ringbuf.Reader
	poll    time.Duration
	expired bool // the deadline passed: set a new one before waiting
}

func (r *ringReader) read(s *slot) error {
	if r.poll > 0 && r.expired {
		r.rd.SetDeadline(time.Now().Add(r.poll))
		r.expired = false
	}
	if r.rd.AvailableBytes() == 0 {
		// The read may block in epoll_wait, a syscall that holds this
		// thread. A goroutine this one readied (the stream's sender)
		// would then make the runtime hand the processor to another
		// thread, and wake its monitor every few microseconds after: 2000
		// wake-ups a second at 50 000 records/s, half the plugin's CPU.
		// Let it run here first.
		runtime.Gosched()
	}
	err := r.rd.ReadInto(&s.rb)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.expired = true
	}
	s.raw, s.lost = s.rb.RawSample, 0
	return err
}
func (r *ringReader) flush() error { return r.rd.Flush() }
func (r *ringReader) close() error { return r.rd.Close() }

type perfReader struct{ rd *perf.Reader }

func (r perfReader) read(s *slot) error {
	err := r.rd.ReadInto(&s.pr)
	s.raw, s.lost = s.pr.RawSample, s.pr.LostSamples
	return err
}
func (r perfReader) flush() error { return r.rd.Flush() }
func (r perfReader) close() error { return r.rd.Close() }

func newSource(m *ebpf.Map, name string, rd recordReader, isPerf bool) *source {
	s := &source{m: m, name: name, rd: rd, perf: isPerf}
	s.slot.src = s
	return s
}

// closeSources closes the readers of ss.
func closeSources(ss []*source) {
	for _, s := range ss {
		_ = s.rd.close()
	}
}

// openSources opens a reader on every map; names are the maps' names in
// the object.
func (m *Module) openSources(maps []*ebpf.Map, names []string) ([]*source, error) {
	var out []*source
	fail := func(err error) ([]*source, error) {
		closeSources(out)
		return nil, err
	}
	for i, em := range maps {
		if em == nil {
			return fail(errors.New("reading events: nil map"))
		}
		name := names[i]
		switch em.Type() {
		case ebpf.RingBuf:
			rd, err := ringbuf.NewReader(em)
			if err != nil {
				return fail(fmt.Errorf("opening ring buffer %s: %w", name, err))
			}
			out = append(out, newSource(em, name, &ringReader{rd: rd, poll: m.poll, expired: true}, false))
		case ebpf.PerfEventArray:
			rd, err := perf.NewReader(em, perfBufferSize(m.settings.Common.BufferKiB))
			if err != nil {
				return fail(fmt.Errorf("opening perf event array %s: %w", name, err))
			}
			out = append(out, newSource(em, name, perfReader{rd}, true))
		default:
			return fail(fmt.Errorf("reading events of map %s: type %s is neither a ring buffer nor a perf event array", name, em.Type()))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("reading events: the module has no event map")
	}
	return out, nil
}

// Run reads every event map of the Spec until Stop, decodes each record
// into one reused sdk.Event with the Hooks' Decode and routes it:
// sdk.RouteModule events to the Hooks' Dispatch, the others to the sink.
// It reports the loss counters every 500ms and before it returns. A record
// that does not decode is counted (CounterDecodeErrors), logged at most
// every few seconds, and dropped.
func (m *Module) Run() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	if m.mgr == nil || m.opened == nil {
		m.mu.Unlock()
		return errors.New("running module: Start did not succeed")
	}
	opened := m.opened
	m.opened = nil
	m.mu.Unlock()
	return m.run(opened)
}

// run is Run once the sources are open: the event loop, separate so that
// tests can feed it fake readers. When Stop came first, it drains what is
// readable and returns.
func (m *Module) run(sources []*source) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		closeSources(sources)
		return nil
	}
	m.sources = sources
	m.stopCh = make(chan struct{})
	m.runDone = make(chan struct{})
	stopCh := m.stopCh
	if m.stopping {
		m.flushLocked()
	}
	m.mu.Unlock()
	defer close(m.runDone)

	if (m.lostMap != nil || len(m.counters) > 0) && m.lostValues == nil {
		m.lostValues = make([]uint64, 0, 64)
	}
	hasPerf := false
	for _, s := range sources {
		hasPerf = hasPerf || s.perf
	}

	done := make(chan error, len(sources))
	for _, s := range sources {
		go m.readLoop(s, done, stopCh)
	}
	stopWatch := func() {}
	if o, ok := m.sink.(overloadSink); ok && (o.BoostsHost() || m.behindMap != nil) {
		quit, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(exited)
			m.watchHost(sources, o, quit)
		}()
		stopWatch = func() { close(quit); <-exited } // before the rings are unmapped
	}

	ticker := time.NewTicker(counterInterval)
	defer ticker.Stop()
	m.publishCountersLocked(hasPerf)

	var firstErr error
	for running := len(sources); running > 0; {
		select {
		case err := <-done:
			running--
			if err != nil && firstErr == nil {
				firstErr = err
				m.log().Error("reading events failed: stopping", "error", err)
				_ = m.Stop()
			}
		case <-ticker.C:
			m.publishCountersLocked(hasPerf)
		}
	}
	stopWatch()
	m.mu.Lock()
	closeSources(sources)
	m.sources = nil
	m.mu.Unlock()
	if lc, ok := m.hooks.(Lifecycle); ok {
		lc.RunEnded()
	}
	m.publishCountersLocked(hasPerf)
	return firstErr
}

// overloadSink is the SDK's sink, which knows whether the host keeps up
// and can return a host in the background to normal priority
// (Transport.boost_pid) when BoostsHost.
type overloadSink interface {
	Overloaded()
	BoostsHost() bool
	HostBehind() bool
}

const (
	// watchEvery is how often watchHost looks at the host and the rings.
	watchEvery = 5 * time.Millisecond
	// overloadedNum/overloadedDen of a ring buffer waiting unread means
	// the host is not keeping up even with the records cut: the TLS
	// modules' probes cut them from half full (kern/include/tls.h), so
	// the host is called out of the background only once that did not
	// suffice.
	overloadedNum, overloadedDen = 3, 4
)

// watchHost runs beside the reader goroutines (they are blocked on the
// sink when it matters) until done or Stop (a reader may be closed then).
// Every watchEvery it tells the probes through Spec.BehindMap whether the
// host is behind, and o when a ring buffer of sources holds more than
// overloadedNum/overloadedDen of its size unread.
func (m *Module) watchHost(sources []*source, o overloadSink, done <-chan struct{}) {
	var rings []*ringbuf.Reader
	if o.BoostsHost() {
		for _, s := range sources {
			if r, ok := s.rd.(*ringReader); ok {
				rings = append(rings, r.rd)
			}
		}
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	told := false // what the behind map says
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if m.behindMap != nil {
			if behind := o.HostBehind(); behind != told {
				v := uint32(0)
				if behind {
					v = 1
				}
				if err := m.behindMap.Put(uint32(0), v); err != nil {
					m.readLog.log(m.log(), "telling the probes the host is behind failed", "error", err)
				} else {
					told = behind
				}
			}
		}
		if len(rings) == 0 {
			continue
		}
		over := false
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			return
		}
		for _, r := range rings {
			over = over || overloaded(r.AvailableBytes(), r.BufferSize())
		}
		m.mu.Unlock()
		if over {
			o.Overloaded()
		}
	}
}

// overloaded tells whether avail bytes waiting in a ring of size bytes
// mean the host is not keeping up.
func overloaded(avail, size int) bool {
	return size > 0 && avail > size/overloadedDen*overloadedNum
}

// readLoop reads s until it is flushed after Stop, closed, or fails, then
// reports on done. It decodes and routes each record itself, under
// handleMu: handing records to another goroutine cost a goroutine switch
// per record, more than the decoding.
func (m *Module) readLoop(s *source, done chan<- error, stopCh <-chan struct{}) {
	var stopAt time.Time
	sl := &s.slot
	for {
		if stopAt.IsZero() {
			select {
			case <-stopCh:
				stopAt = time.Now()
			default:
			}
		}
		if !stopAt.IsZero() && time.Since(stopAt) > drainTimeout {
			m.log().Warn("stopped draining: the kernel keeps producing", "map", s.name)
			done <- nil
			return
		}
		err := s.rd.read(sl)
		if err == nil {
			m.handleMu.Lock()
			m.handle(sl)
			m.handleMu.Unlock()
			continue
		}
		switch {
		case errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, perf.ErrFlushed), errors.Is(err, os.ErrDeadlineExceeded):
			select {
			case <-stopCh:
				done <- nil
				return
			default: // a flush not caused by Stop: keep reading
			}
		case errors.Is(err, os.ErrClosed):
			done <- nil
			return
		case perf.IsUnknownEvent(err):
			m.readLog.log(m.log(), "skipping an unknown perf event", "map", s.name, "error", err)
		default:
			done <- fmt.Errorf("reading map %s: %w", s.name, err)
			return
		}
	}
}

// handle decodes and routes one record. handleMu is held: the Hooks'
// Decode and Dispatch never run concurrently.
func (m *Module) handle(sl *slot) {
	m.perfLost += sl.lost
	if len(sl.raw) == 0 && sl.lost > 0 {
		return
	}
	ev := &m.ev
	ev.Reset()
	if err := m.decode(sl.src.name, sl.raw, ev); err != nil {
		m.decodeErrors++
		m.errLog.log(m.log(), "dropping a record that does not decode", "map", sl.src.name, "len", len(sl.raw), "error", err)
		return
	}
	if ev.Route == sdk.RouteModule {
		if d, ok := m.hooks.(Dispatcher); ok {
			d.Dispatch(ev)
		} else {
			m.errLog.log(m.log(), "dropping an event routed to the module: the module has no Dispatch", "kind", ev.Kind)
		}
		return
	}
	if m.sink != nil {
		m.sink.Emit(ev)
	}
}

// decode calls the Hooks' Decode, turning a panic into an error: a bug in
// a decoder must cost one record, not the capture.
func (m *Module) decode(mapName string, raw []byte, ev *sdk.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panicked: %v", r)
		}
	}()
	return m.hooks.Decode(mapName, raw, ev)
}

// counter is a CounterMap resolved by Start.
type counter struct {
	CounterMap
	m *ebpf.Map
}

// publishCountersLocked reports the loss counters to the sink, taking
// handleMu (the counters of decoding are updated under it).
func (m *Module) publishCountersLocked(hasPerf bool) {
	m.handleMu.Lock()
	defer m.handleMu.Unlock()
	m.publishCounters(hasPerf)
}

// publishCounters reports the loss counters to the sink.
func (m *Module) publishCounters(hasPerf bool) {
	if m.sink == nil {
		return
	}
	if m.lostMap != nil {
		if err := m.lostMap.Lookup(uint32(0), &m.lostValues); err != nil {
			m.readLog.log(m.log(), "reading the lost-record counter failed", "error", err)
		} else {
			var total uint64
			for _, v := range m.lostValues {
				total += v
			}
			m.sink.SetCounter(CounterReserveFailed, total)
		}
	}
	for _, c := range m.counters {
		if err := c.m.Lookup(c.Index, &m.lostValues); err != nil {
			m.readLog.log(m.log(), "reading a counter failed", "counter", c.Name, "error", err)
			continue
		}
		var total uint64
		for _, v := range m.lostValues {
			total += v
		}
		m.sink.SetCounter(c.Name, total)
	}
	if hasPerf {
		m.sink.SetCounter(CounterPerfLost, m.perfLost)
	}
	m.sink.SetCounter(CounterDecodeErrors, m.decodeErrors)
	m.publishDiscovery()
}

// Stop makes Run return once the records readable now are delivered (or
// after a second of draining a kernel that keeps producing). It may be
// called from any goroutine, before or during Run, more than once.
func (m *Module) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return nil
	}
	m.stopping = true
	if m.stopCh != nil {
		m.flushLocked()
	}
	return nil
}

// flushLocked tells the reader goroutines to drain and return. m.mu is
// held and stopCh is open.
func (m *Module) flushLocked() {
	close(m.stopCh)
	for _, s := range m.sources {
		if err := s.rd.flush(); err != nil {
			// The reader cannot be woken: close it, losing what is left.
			_ = s.rd.close()
		}
	}
}
