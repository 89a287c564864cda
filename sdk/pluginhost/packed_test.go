package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// emitter is a module whose Run emits evs, then waits for Stop.
type emitter struct {
	api  []uint32 // nil: version 2
	evs  []sdk.Event
	sink sdk.Sink
	stop chan struct{}
	once sync.Once
}

func (e *emitter) Info() sdk.Info {
	if e.api != nil {
		return sdk.Info{Name: "m", APIVersions: e.api}
	}
	return sdk.Info{Name: "m", APIVersions: []uint32{2}}
}
func (e *emitter) Init(_ context.Context, _ hclog.Logger, _ sdk.Settings, sink sdk.Sink) error {
	e.sink, e.stop = sink, make(chan struct{})
	return nil
}
func (e *emitter) Start() error { return nil }
func (e *emitter) Run() error {
	for i := range e.evs {
		e.sink.Emit(&e.evs[i])
	}
	<-e.stop
	return nil
}
func (e *emitter) Stop() error  { e.once.Do(func() { close(e.stop) }); return nil }
func (e *emitter) Close() error { return nil }

// packedBatch has the SDK's own plugin server, in this process, emit evs
// under module API version 2 with batching settings tr, and returns the
// packed records of its first batch on the gRPC stream: the bytes the
// plugin's writer really makes, undecoded.
func packedBatch(t testing.TB, evs []sdk.Event, tr Transport) []byte {
	t.Helper()
	return packedBatchVersion(t, evs, tr, 2)
}

// packedBatchVersion is packedBatch under module API version api.
func packedBatchVersion(t testing.TB, evs []sdk.Event, tr Transport, api uint32) []byte {
	t.Helper()
	pc, _ := plugin.TestPluginGRPCConn(t, false, ServerFor(&emitter{evs: evs, api: []uint32{api}}, hclog.NewNullLogger(), nil))
	t.Cleanup(func() { _ = pc.Close() })
	raw, err := pc.Dispense(DispenseName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*Client)
	ctx := context.Background()
	if _, err := c.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if ds, err := c.Configure(ctx, sdk.Settings{APIVersion: api}, tr); err != nil || ds.HasErrors() {
		t.Fatalf("configure: %v %v", ds, err)
	}
	stream, err := c.rpc.Events(ctx, &pb.EventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	packed := bytes.Clone(w.GetPacked())
	go func() { // drain until the plugin ends the stream
		for err == nil {
			_, err = stream.Recv()
		}
	}()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return packed
}

// oneBatch is a Transport that sends n events as one batch.
func oneBatch(n int) Transport {
	return Transport{MaxBatchEvents: uint32(n), MaxBatchBytes: wire.MaxTransportBytes, FlushInterval: time.Hour}
}

// packedEvents are events of every shape a packed record can take.
func packedEvents() []sdk.Event {
	conn := sdk.Connection{ID: 1<<63 + 5, Local: netip.MustParseAddrPort("10.1.2.3:443"),
		Remote: netip.MustParseAddrPort("[2001:db8::7]:51000"), Direction: sdk.DirectionIngress}
	return []sdk.Event{
		{Time: time.Unix(1700000000, 1), Module: "m", Kind: "tls_data", PID: 1, TID: 2, UID: 3, Comm: "curl",
			Payload: []byte("GET / HTTP/1.1\r\n\r\n"), Conn: conn, Route: sdk.RouteStream,
			Fields: []sdk.Field{{Key: "lib", Value: "openssl"}, {Key: "fn", Value: "SSL_read"}, {Key: "long", Value: strings.Repeat("v", 300)}}},
		{Time: time.Unix(0, 0), Module: "m", Kind: "empty", Payload: []byte{}},
		{Time: time.Unix(5, 0), Module: "m", Kind: strings.Repeat("k", 1000), Comm: "ünïcode", Payload: bytes.Repeat([]byte{0, 0xff}, 5000),
			Conn: sdk.Connection{Direction: sdk.DirectionEgress}},
		{Time: time.Unix(6, 0), Module: "m", Kind: "addr-only", Payload: []byte("x"),
			Conn: sdk.Connection{Remote: netip.MustParseAddrPort("127.0.0.1:22")}},
	}
}

// TestPackedCgroupOnlyFromVersion3 checks that the plugin sends the
// cgroup id in packed records only to a host that chose module API
// version 3 (flag 8 would be misread by an older one), and that the host
// reads it back.
func TestPackedCgroupOnlyFromVersion3(t *testing.T) {
	ev := sdk.Event{Time: time.Unix(7, 0), Module: "m", Kind: "k", CgroupID: 0x1_0000_2a31, Payload: []byte("p")}
	for _, tt := range []struct {
		api  uint32
		want uint64
		size int
	}{
		{2, 0, wire.HeaderBytes + 2},
		{3, ev.CgroupID, wire.HeaderBytes + wire.CgroupBytes + 2},
	} {
		buf := packedBatchVersion(t, []sdk.Event{ev}, oneBatch(1), tt.api)
		if len(buf) != tt.size {
			t.Errorf("version %d: record of %d bytes, want %d", tt.api, len(buf), tt.size)
		}
		var d BatchDecoder
		d.Module = "m"
		b := d.Decode(&pb.EventBatch{Packed: buf})
		if b.Err != nil || len(b.Events) != 1 {
			t.Fatalf("version %d: decode: %v, %d events", tt.api, b.Err, len(b.Events))
		}
		if got := b.Events[0]; got.CgroupID != tt.want || string(got.Payload) != "p" {
			t.Errorf("version %d: cgroup %d payload %q, want cgroup %d", tt.api, got.CgroupID, got.Payload, tt.want)
		}
	}
}

func TestPackedRoundTrip(t *testing.T) {
	want := packedEvents()
	buf := packedBatch(t, want, oneBatch(len(want)))
	var d BatchDecoder
	d.Module = "m"
	b := d.Decode(&pb.EventBatch{Sequence: 3, Packed: buf})
	if b.Err != nil {
		t.Fatalf("decode: %v", b.Err)
	}
	if len(b.Events) != len(want) {
		t.Fatalf("%d events, want %d", len(b.Events), len(want))
	}
	for i := range want {
		got := b.Events[i]
		if len(got.Fields) == 0 {
			got.Fields = nil
		}
		if !got.Time.Equal(want[i].Time) {
			t.Errorf("event %d: time %v, want %v", i, got.Time, want[i].Time)
		}
		got.Time = want[i].Time
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

// TestPackedFragmentsJoin: a record split into packed pieces comes out
// whole, between the events around it.
func TestPackedFragmentsJoin(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 1000)
	ev := sdk.Event{Kind: "big", PID: 4, Payload: big, Fields: []sdk.Field{{Key: "k", Value: "v"}}}
	tr := oneBatch(2 + (len(big)+2999)/3000) // before, the pieces, after
	tr.MaxFragmentBytes = 3000
	buf := packedBatch(t, []sdk.Event{{Kind: "before"}, ev, {Kind: "after"}}, tr)
	var d BatchDecoder
	b := d.Decode(&pb.EventBatch{Packed: buf})
	if len(b.Events) != 3 || b.Events[0].Kind != "before" || b.Events[2].Kind != "after" {
		t.Fatalf("got %d events, want before, big, after", len(b.Events))
	}
	got := b.Events[1]
	if !bytes.Equal(got.Payload, big) || got.PID != 4 || len(got.Fields) != 1 || got.Fields[0].Value != "v" {
		t.Errorf("joined record: %d bytes pid %d fields %v", len(got.Payload), got.PID, got.Fields)
	}
}

// TestPackedCutAnywhere: a batch cut at any byte delivers the records
// before the cut intact, counts the batch malformed and says why.
func TestPackedCutAnywhere(t *testing.T) {
	evs := packedEvents()
	buf := packedBatch(t, evs, oneBatch(len(evs)))
	var ends []int // of each record: its length comes first
	for end := 0; end < len(buf); {
		end += int(wire.LE.Uint32(buf[end:]))
		ends = append(ends, end)
	}
	if len(ends) != len(evs) {
		t.Fatalf("%d records for %d events", len(ends), len(evs))
	}
	for cut := 1; cut < len(buf); cut++ {
		whole := 0
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		var d BatchDecoder
		b := d.Decode(&pb.EventBatch{Packed: buf[:cut]})
		if len(b.Events) != whole {
			t.Fatalf("cut at %d: %d events, want %d", cut, len(b.Events), whole)
		}
		atEnd := whole > 0 && ends[whole-1] == cut
		if atEnd {
			if b.Err != nil {
				t.Fatalf("cut at a record's end %d: %v", cut, b.Err)
			}
			continue
		}
		if !errors.Is(b.Err, errPacked) {
			t.Fatalf("cut at %d: err %v, want a malformed batch", cut, b.Err)
		}
		if n := counter(b.Losses, CounterBatchesMalformed); n != 1 {
			t.Fatalf("cut at %d: %s = %d, want 1", cut, CounterBatchesMalformed, n)
		}
	}
}

// TestPackedLengthsInsideRecord: a record whose inner lengths overrun it
// is refused even when bytes follow it.
func TestPackedLengthsInsideRecord(t *testing.T) {
	ev := sdk.Event{Kind: "k", Comm: "c", Payload: []byte("payload")}
	one := packedBatch(t, []sdk.Event{ev}, oneBatch(1))
	bad := bytes.Clone(one)
	wire.LE.PutUint16(bad[28:], 200) // kind longer than the record
	buf := append(bad, one...)
	var d BatchDecoder
	b := d.Decode(&pb.EventBatch{Sequence: 7, Packed: buf})
	if len(b.Events) != 0 || b.Err == nil || !strings.Contains(b.Err.Error(), "batch 7") {
		t.Errorf("%d events, err %v: want none and an error naming batch 7", len(b.Events), b.Err)
	}
}

func counter(cs []Counter, name string) uint64 {
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

// BenchmarkPackedDecode is the host's per-event cost of reading a packed
// batch of 1 KiB TLS records. It must not allocate per event.
func BenchmarkPackedDecode(b *testing.B) {
	ev := packedEvents()[0]
	ev.Payload = bytes.Repeat([]byte("a"), 1024)
	ev.Fields = ev.Fields[:2]
	evs := make([]sdk.Event, 1024)
	for i := range evs {
		evs[i] = ev
	}
	buf := packedBatch(b, evs, oneBatch(len(evs)))
	w := &pb.EventBatch{Packed: buf}
	var d BatchDecoder
	b.ReportAllocs()
	b.SetBytes(int64(len(buf) / 1024))
	b.ResetTimer()
	for i := 0; i < b.N; i += 1024 {
		if n := len(d.Decode(w).Events); n != 1024 {
			b.Fatalf("%d events", n)
		}
	}
}

func TestPackedDecodeDoesNotAllocatePerEvent(t *testing.T) {
	res := testing.Benchmark(BenchmarkPackedDecode)
	if a := res.AllocsPerOp(); a >= 1 {
		t.Errorf("decoding allocates %d times per event", a)
	}
}

// FuzzPackedDecode feeds hostile packed bytes to the host's decoder: it
// must never panic, never hand out a route or direction the contract does
// not have, and stop at the first record that does not make sense.
func FuzzPackedDecode(f *testing.F) {
	evs := packedEvents()
	f.Add(packedBatch(f, evs, oneBatch(len(evs))))
	tr := oneBatch(2)
	tr.MaxFragmentBytes = 10 // the first two pieces of a split record
	f.Add(packedBatch(f, evs[:1], tr))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d BatchDecoder
		b := d.Decode(&pb.EventBatch{Packed: raw})
		for _, ev := range b.Events {
			if len(ev.Payload) > MaxRecordBytes || len(ev.Payload) > len(raw) {
				t.Fatalf("record of %d bytes from %d", len(ev.Payload), len(raw))
			}
			if ev.Route != sdk.RouteOutput && ev.Route != sdk.RouteStream {
				t.Fatalf("route %v reached the host", ev.Route)
			}
			if ev.Conn.Direction > sdk.DirectionIngress {
				t.Fatalf("direction %v reached the host", ev.Conn.Direction)
			}
		}
	})
}
