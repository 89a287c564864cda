package ebpfbase

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/hashicorp/go-hclog"

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

// testHooks are a minimal module's hooks.
type testHooks struct {
	spec       *Spec
	decode     func(s *Stamper, raw []byte, ev *sdk.Event) error
	dispatched []*sdk.Event
	stamp      Stamper
}

func (h *testHooks) Info() sdk.Info { return sdk.Info{Name: "test", Version: "0"} }
func (h *testHooks) Init(context.Context, hclog.Logger, sdk.Settings, sdk.Sink) error {
	return nil
}
func (h *testHooks) Spec() (*Spec, error) { return h.spec, nil }
func (h *testHooks) Decode(_ string, raw []byte, ev *sdk.Event) error {
	return h.decode(&h.stamp, raw, ev)
}
func (h *testHooks) Dispatch(ev *sdk.Event) { h.dispatched = append(h.dispatched, ev.Clone()) }

var (
	_ Hooks      = (*testHooks)(nil)
	_ Dispatcher = (*testHooks)(nil)
)

// testChild is the Module running testHooks.
type testChild struct {
	*Module
	h *testHooks
}

func newTestChild() *testChild {
	h := &testHooks{}
	return &testChild{Module: New(h), h: h}
}
