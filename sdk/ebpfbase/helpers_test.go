package ebpfbase

import (
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// bashObject is the CO-RE object of the bash plugin, the real object the
// tests of this package load: it is built with kern/include/ecap.h.
const bashObjectPath = "../../plugins/bash/bpf/bash_kern_core.o"

func bashObject(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(bashObjectPath)
	if err != nil {
		harness.SkipOrFail(t, "reading the bash object (tests need the repository checkout): %v", err)
	}
	return b
}

func bashSpec(t testing.TB) *ebpf.CollectionSpec {
	t.Helper()
	cs, err := ebpf.LoadCollectionSpec(bashObjectPath)
	if err != nil {
		bashObject(t) // skips or fails with the reason
		t.Fatalf("loading the bash object: %v", err)
	}
	return cs
}

// fakeSink records what a module emits.
type fakeSink struct {
	mu       sync.Mutex
	events   []*sdk.Event
	counters map[string]uint64
	discard  bool
}

func (s *fakeSink) Emit(ev *sdk.Event) {
	if s.discard {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev.Clone())
}

func (s *fakeSink) SetCounter(name string, total uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters == nil {
		s.counters = map[string]uint64{}
	}
	s.counters[name] = total
}

func (s *fakeSink) snapshot() ([]*sdk.Event, map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]uint64{}
	for k, v := range s.counters {
		c[k] = v
	}
	return append([]*sdk.Event(nil), s.events...), c
}

// testChild is a minimal concrete module.
type testChild struct {
	Module
	spec       *Spec
	decode     func(m *Module, raw []byte, ev *sdk.Event) error
	dispatched []*sdk.Event
}

func newTestChild() *testChild {
	c := &testChild{}
	c.SetChild(c)
	return c
}

func (c *testChild) Info() sdk.Info       { return sdk.Info{Name: "test", Version: "0"} }
func (c *testChild) Spec() (*Spec, error) { return c.spec, nil }
func (c *testChild) Decode(_ *ebpf.Map, raw []byte, ev *sdk.Event) error {
	return c.decode(&c.Module, raw, ev)
}
func (c *testChild) Dispatcher(ev *sdk.Event) { c.dispatched = append(c.dispatched, ev.Clone()) }

var _ Child = (*testChild)(nil)
