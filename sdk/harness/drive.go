package harness

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

// Sink is an sdk.Sink that keeps a copy of every event and the last value
// of every counter, for a test that drives a module itself (Drive). Safe
// for concurrent use.
type Sink struct {
	mu       sync.Mutex
	events   []*sdk.Event
	counters map[string]uint64
}

// Emit keeps a copy of ev.
func (s *Sink) Emit(ev *sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev.Clone())
}

// SetCounter keeps the counter's total.
func (s *Sink) SetCounter(name string, total uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters == nil {
		s.counters = map[string]uint64{}
	}
	s.counters[name] = total
}

// Events returns the events emitted so far by process pid, all of them
// when pid is 0.
func (s *Sink) Events(pid int) []*sdk.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*sdk.Event
	for _, ev := range s.events {
		if pid == 0 || int(ev.PID) == pid {
			out = append(out, ev)
		}
	}
	return out
}

// Counter returns a counter's last total, and whether it was set.
func (s *Sink) Counter(name string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.counters[name]
	return v, ok
}

// Driven is a module a test drives in-process, without the host's
// transport (Host does that): the test keeps the module's own value, sets
// what it needs before Drive (an ebpfbase.Module's Bytecode, say) and
// chooses when Run starts.
type Driven struct {
	Module sdk.Module
	Sink   *Sink
	errc   chan error // Run's result; nil while Run is not running
}

// Drive initialises m with settings (its log goes to the test's, its events
// to a new Sink) and starts it, failing the test on error. Run is left to
// the test; when the test ends the module is stopped, Run awaited, and m
// closed.
func Drive(t testing.TB, m sdk.Module, settings sdk.Settings) *Driven {
	t.Helper()
	d := &Driven{Module: m, Sink: &Sink{}}
	logger := hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
	if err := m.Init(t.Context(), logger, settings, d.Sink); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := m.Start(); err != nil {
		_ = m.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		d.Stop(t)
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// Run runs the module's Run in a goroutine of its own.
func (d *Driven) Run() {
	errc := make(chan error, 1)
	d.errc = errc
	go func() { errc <- d.Module.Run() }()
}

// Stop stops the module and, if it runs, waits (at most 10 s) for Run to
// return, failing the test on its error. Later calls only call the
// module's Stop again.
func (d *Driven) Stop(t testing.TB) {
	t.Helper()
	_ = d.Module.Stop()
	if d.errc == nil {
		return
	}
	errc := d.errc
	d.errc = nil
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return within 10 s of Stop")
	}
}
