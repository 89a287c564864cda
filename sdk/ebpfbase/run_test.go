package ebpfbase

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/ecaphost/ecaphost/sdk"
)

// fakeReader delivers queued records, then ErrFlushed once flushed, like
// ringbuf.Reader.
type fakeReader struct {
	recs      chan []byte
	flushOnce sync.Once
	flushed   chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

func newFakeReader(n int) *fakeReader {
	return &fakeReader{recs: make(chan []byte, n), flushed: make(chan struct{}), closed: make(chan struct{})}
}

func (f *fakeReader) read(s *slot) error {
	fill := func(r []byte) error { s.raw = append(s.raw[:0], r...); s.lost = 0; return nil }
	select {
	case r := <-f.recs: // what is readable comes first, as in the ring
		return fill(r)
	default:
	}
	select {
	case r := <-f.recs:
		return fill(r)
	case <-f.flushed:
		return fmt.Errorf("fake: %w", ringbuf.ErrFlushed)
	case <-f.closed:
		return fmt.Errorf("fake: %w", os.ErrClosed)
	}
}
func (f *fakeReader) flush() error { f.flushOnce.Do(func() { close(f.flushed) }); return nil }
func (f *fakeReader) close() error { f.closeOnce.Do(func() { close(f.closed) }); return nil }

// testRecord is a header followed by a payload of Len bytes.
func testRecord(kind uint32, payload string) []byte {
	raw := make([]byte, HeaderSize+len(payload))
	binary.NativeEndian.PutUint64(raw[0:], 1e9)
	binary.NativeEndian.PutUint32(raw[8:], 100)
	binary.NativeEndian.PutUint32(raw[12:], 101)
	binary.NativeEndian.PutUint32(raw[20:], kind)
	binary.NativeEndian.PutUint32(raw[24:], uint32(len(payload)))
	copy(raw[32:], "bash")
	copy(raw[HeaderSize:], payload)
	return raw
}

var errTestMalformed = errors.New("malformed")

// decodeTestRecord decodes testRecord; kind 2 is routed to the module,
// kind 3 panics.
func decodeTestRecord(s *Stamper, raw []byte, ev *sdk.Event) error {
	h, err := DecodeHeader(raw)
	if err != nil {
		return err
	}
	if int(h.Len) != len(raw)-HeaderSize {
		return errTestMalformed
	}
	s.FillEvent(&h, ev)
	ev.Kind = "test"
	ev.Payload = append(ev.Payload[:0], raw[HeaderSize:]...)
	ev.AddField("k", "v")
	switch h.Kind {
	case 2:
		ev.Route = sdk.RouteModule
	case 3:
		var p *Header
		_ = p.PID // a decoder bug
	}
	return nil
}

func startFakeRun(t *testing.T, c *testChild, rd *fakeReader) (sink *fakeSink, wait func() error) {
	t.Helper()
	sink = &fakeSink{}
	if err := c.Init(t.Context(), nil, sdk.Settings{}, sink); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.run([]*source{newSource(nil, "fake", rd, false)}) }()
	return sink, func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func TestRunDecodesRoutesAndCounts(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	rd := newFakeReader(16)
	good, toModule, short, bad, panics := testRecord(1, "hello"), testRecord(2, "mine"), []byte{1, 2, 3}, testRecord(1, "x"), testRecord(3, "boom")
	binary.NativeEndian.PutUint32(bad[24:], 99) // Len lies
	for _, r := range [][]byte{good, short, toModule, bad, panics, good} {
		rd.recs <- r
	}
	sink, wait := startFakeRun(t, c, rd)
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, _ := sink.snapshot()
		if len(evs) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	evs, counters := sink.snapshot()
	if len(evs) != 2 {
		t.Fatalf("emitted %d events, want 2", len(evs))
	}
	ev := evs[0]
	if ev.Kind != "test" || string(ev.Payload) != "hello" || ev.PID != 100 || ev.TID != 101 || ev.Comm != "bash" || len(ev.Fields) != 1 {
		t.Errorf("event %+v", ev)
	}
	if len(c.h.dispatched) != 1 || string(c.h.dispatched[0].Payload) != "mine" {
		t.Errorf("dispatched %v, want the RouteModule event", c.h.dispatched)
	}
	if got := counters[CounterDecodeErrors]; got != 3 {
		t.Errorf("%s = %d, want 3 (short, inconsistent, panicking)", CounterDecodeErrors, got)
	}
	if _, ok := counters[CounterPerfLost]; ok {
		t.Errorf("%s reported without a perf event array", CounterPerfLost)
	}
}

func TestStopDrainsWhatIsReadable(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	const n = 5000
	rd := newFakeReader(n)
	for i := 0; i < n; i++ {
		rd.recs <- testRecord(1, "r")
	}
	sink, wait := startFakeRun(t, c, rd)
	if err := c.Stop(); err != nil { // at once: most records are still queued
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if evs, _ := sink.snapshot(); len(evs) != n {
		t.Errorf("delivered %d of %d readable records after Stop", len(evs), n)
	}
}

func TestCloseBeforeRun(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestCloseInterruptsRun(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	rd := newFakeReader(1)
	_, wait := startFakeRun(t, c, rd)
	time.Sleep(10 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRunReportsReadErrors(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	sink := &fakeSink{}
	_ = c.Init(t.Context(), nil, sdk.Settings{}, sink)
	err := c.run([]*source{newSource(nil, "broken", brokenReader{}, false)})
	if !errors.Is(err, errBroken) {
		t.Errorf("Run: %v, want an error wrapping the read error", err)
	}
}

var errBroken = errors.New("broken")

type brokenReader struct{}

func (brokenReader) read(*slot) error { return errBroken }
func (brokenReader) flush() error     { return nil }
func (brokenReader) close() error     { return nil }

func TestRunWithoutStart(t *testing.T) {
	c := newTestChild()
	if err := c.Run(); err == nil {
		t.Error("Run without Start succeeded")
	}
}

// TestHandleDoesNotAllocate measures the decode-and-route path of one
// record: with a decoder that reuses the Event, it must not allocate.
func TestHandleDoesNotAllocate(t *testing.T) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	_ = c.Init(t.Context(), nil, sdk.Settings{}, &fakeSink{discard: true})
	s := newSource(nil, "fake", nil, false)
	sl := &s.slot
	sl.raw = testRecord(1, "some command line")
	c.handle(sl) // warm up: Payload, Fields, comm cache
	if n := testing.AllocsPerRun(1000, func() { c.handle(sl) }); n != 0 {
		t.Errorf("handling a record allocates %v times, want 0", n)
	}
}

func BenchmarkHandle(b *testing.B) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	_ = c.Init(b.Context(), nil, sdk.Settings{}, &fakeSink{discard: true})
	s := newSource(nil, "fake", nil, false)
	sl := &s.slot
	sl.raw = testRecord(1, "some command line")
	b.ReportAllocs()
	for b.Loop() {
		c.handle(sl)
	}
}

// BenchmarkRun measures the whole loop with a fake reader: reader
// goroutine, hand-off to Run, decode, emit.
func BenchmarkRun(b *testing.B) {
	c := newTestChild()
	c.h.decode = decodeTestRecord
	_ = c.Init(b.Context(), nil, sdk.Settings{}, &fakeSink{discard: true})
	rd := newFakeReader(b.N)
	rec := testRecord(1, "some command line")
	for i := 0; i < b.N; i++ {
		rd.recs <- rec
	}
	b.ReportAllocs()
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() { errc <- c.run([]*source{newSource(nil, "fake", rd, false)}) }()
	for len(rd.recs) > 0 {
		time.Sleep(time.Millisecond)
	}
	_ = c.Stop()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
