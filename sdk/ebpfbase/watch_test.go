package ebpfbase

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

func TestOverloaded(t *testing.T) {
	for _, tc := range []struct {
		avail, size int
		want        bool
	}{
		{0, 16 << 20, false},
		{8 << 20, 16 << 20, false}, // half: the probes cut, the host may stay in the background
		{12 << 20, 16 << 20, false},
		{12<<20 + 1, 16 << 20, true},
		{1, 0, false},
	} {
		if got := overloaded(tc.avail, tc.size); got != tc.want {
			t.Errorf("overloaded(%d, %d) = %v, want %v", tc.avail, tc.size, got, tc.want)
		}
	}
}

// watchSink is an overloadSink whose answers the test sets.
type watchSink struct {
	fakeSink
	boosts     bool
	behind     atomic.Bool
	overloaded atomic.Int32
}

func (s *watchSink) Overloaded()      { s.overloaded.Add(1) }
func (s *watchSink) BoostsHost() bool { return s.boosts }
func (s *watchSink) HostBehind() bool { return s.behind.Load() }

// TestWatchHost: the behind map follows what the sink says of the host,
// and a ring buffer filled past three quarters tells the sink it is
// overloaded; nothing after done.
func TestWatchHost(t *testing.T) {
	harness.RequirePrivileges(t)
	behindMap, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer behindMap.Close()
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	rd, err := ringbuf.NewReader(ring)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	m := &Module{logger: hclog.NewNullLogger(), behindMap: behindMap}
	s := &watchSink{boosts: true}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		m.watchHost([]*source{newSource(ring, "events", &ringReader{rd: rd}, false)}, s, done)
	}()
	mapSays := func(want uint32) {
		t.Helper()
		var v uint32
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(watchEvery) {
			if err := behindMap.Lookup(uint32(0), &v); err != nil {
				t.Fatal(err)
			}
			if v == want {
				return
			}
		}
		t.Fatalf("behind map holds %d, want %d", v, want)
	}
	mapSays(0)
	s.behind.Store(true)
	mapSays(1)
	s.behind.Store(false)
	mapSays(0)
	// An empty ring is no overload; user space cannot fill a ring buffer,
	// so the threshold itself is TestOverloaded's.
	time.Sleep(4 * watchEvery)
	if n := s.overloaded.Load(); n != 0 {
		t.Errorf("told overloaded %d times with an empty ring", n)
	}
	close(done)
	<-exited
}
