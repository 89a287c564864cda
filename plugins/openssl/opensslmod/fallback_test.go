package opensslmod

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// TestPendingNeed: when a pending session asks for the fallback probes,
// and when the module gives up on it.
func TestPendingNeed(t *testing.T) {
	const now = uint64(100 * time.Second)
	ago := func(d time.Duration) uint64 { return now - uint64(d) }
	for _, tc := range []struct {
		name string
		v    pendingSession
		want int
	}{
		{"just made", pendingSession{CreatedNS: ago(10 * time.Millisecond)}, pendingWaits},
		{"no handshake call within the grace", pendingSession{CreatedNS: ago(fallbackGrace)}, pendingNeeds},
		{"handshake entered lately", pendingSession{CreatedNS: ago(time.Second), HandshakeNS: ago(time.Second)}, pendingWaits},
		{"handshake entered, not keyed", pendingSession{CreatedNS: ago(3 * time.Second), HandshakeNS: ago(fallbackHandshakeGrace)}, pendingNeeds},
		{"given up", pendingSession{CreatedNS: ago(fallbackGrace + fallbackGiveUp)}, pendingGiveUp},
		{"given up after a handshake call", pendingSession{CreatedNS: ago(time.Minute), HandshakeNS: ago(fallbackHandshakeGrace + fallbackGiveUp)}, pendingGiveUp},
		{"from the future (clock read first)", pendingSession{CreatedNS: now + 1}, pendingWaits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pendingNeed(now, tc.v); got != tc.want {
				t.Errorf("pendingNeed = %d, want %d", got, tc.want)
			}
		})
	}
}

// fakeObject is the loaded object as the fallback sees it, counting the
// files attached and released.
type fakeObject struct {
	found    []ebpfbase.FoundFile
	failSpec bool
	failID   map[uint64]error
	attached map[string]int // by path or found ID: attachments not yet released
	tries    map[string]int // attach calls
}

func (o *fakeObject) attach(key string, fail error) (func() error, error) {
	o.tries[key]++
	if fail != nil {
		return nil, fail
	}
	o.attached[key]++
	return func() error { o.attached[key]--; return nil }, nil
}

func (o *fakeObject) AttachUprobes(path string, _ []ebpfbase.Probe) (func() error, error) {
	var err error
	if o.failSpec {
		err = errors.New("no such symbol")
	}
	return o.attach(path, err)
}

func (o *fakeObject) FoundFiles() []ebpfbase.FoundFile { return o.found }

func (o *fakeObject) AttachFoundUprobes(id uint64, _ []ebpfbase.Probe) (func() error, error) {
	return o.attach("found:"+strconv.FormatUint(id, 10), o.failID[id])
}

// TestFallbackAttach: the fallback probes go on every spec binary and
// every file found node-wide (of the binary's kind), files found while
// attached join, files discovery let go of are released, a found file
// that fails is tried once, and detach releases everything.
func TestFallbackAttach(t *testing.T) {
	const lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
	newF := func(o *fakeObject) *fallback {
		return &fallback{obj: o, logger: hclog.NewNullLogger(), failed: map[uint64]bool{}, targets: []fallbackTarget{
			{path: lib, probes: []ebpfbase.Probe{{Section: "uprobe/SSL_write", Program: progFallback, Symbol: symWrite}}},
		}}
	}
	o := &fakeObject{attached: map[string]int{}, tries: map[string]int{}, failID: map[uint64]error{
		3: errors.New("permission denied"),
		4: fmt.Errorf("file 4: %w", ebpfbase.ErrFileReleased),
	}}
	o.found = []ebpfbase.FoundFile{{ID: 1, Name: "/c1/libssl.so.3", PID: 10, Binary: lib}, {ID: 2, Name: "/other", Binary: "/not/a/target"}}
	f := newF(o)
	if err := f.attach(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{lib: 1, "found:1": 1}
	if !maps.Equal(o.attached, want) {
		t.Fatalf("attached %v, want %v", o.attached, want)
	}
	if got := len(f.listProbes()); got != 2 {
		t.Errorf("%d probes listed, want 2: %v", got, f.listProbes())
	}

	// While attached: file 1 let go of, 3 (failing), 4 (released meanwhile) and 5 found.
	o.found = []ebpfbase.FoundFile{{ID: 3, Name: "/c3", Binary: lib}, {ID: 4, Name: "/c4", Binary: lib}, {ID: 5, Name: "/c5", Binary: lib}}
	for range 2 {
		if err := f.attach(); err != nil {
			t.Fatal(err)
		}
	}
	want = map[string]int{lib: 1, "found:1": 0, "found:5": 1}
	if !maps.Equal(o.attached, want) {
		t.Errorf("attached %v, want %v", o.attached, want)
	}
	if o.tries[lib] != 1 || o.tries["found:3"] != 1 || o.tries["found:5"] != 1 {
		t.Errorf("attach calls %v: want the spec binary once, a failing file once, a new one once", o.tries)
	}

	f.detach()
	for k, n := range o.attached {
		if n != 0 {
			t.Errorf("%s still attached %d times after detach", k, n)
		}
	}
	if n, _ := f.usage(); n != 1 || f.isAttached() || len(f.listProbes()) != 0 {
		t.Errorf("after detach: %d attachments, attached %v, probes %v", n, f.isAttached(), f.listProbes())
	}

	// A spec binary that fails: an error, nothing left attached.
	o2 := &fakeObject{attached: map[string]int{}, tries: map[string]int{}, failSpec: true}
	f2 := newF(o2)
	if err := f2.attach(); err == nil || f2.isAttached() {
		t.Errorf("attach with a failing spec binary: %v, attached %v", err, f2.isAttached())
	}
}
