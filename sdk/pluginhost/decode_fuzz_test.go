package pluginhost_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// FuzzBatchDecode feeds hostile wire batches (a broken or malicious
// plugin) to the host's batch decoder: it must never panic, never hand out
// a record larger than pluginhost.MaxRecordBytes, and count what it cannot place.
func FuzzBatchDecode(f *testing.F) {
	seed := func(b *pb.EventBatch) {
		raw, err := proto.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, raw)
	}
	seed(&pb.EventBatch{Sequence: 1, Events: []*pb.Event{{Kind: "k", Payload: []byte("x"), Fields: []*pb.Field{{Key: "a", Value: "b"}}}}})
	seed(&pb.EventBatch{Events: []*pb.Event{
		{Payload: []byte("ab"), Fragment: &pb.Fragment{RecordId: 1, Index: 0, TotalBytes: 4}},
		{Payload: []byte("cd"), Fragment: &pb.Fragment{RecordId: 1, Index: 1, Last: true, TotalBytes: 4}},
	}})
	seed(&pb.EventBatch{Events: []*pb.Event{
		{Payload: []byte("ab"), Fragment: &pb.Fragment{RecordId: 1, Index: 1, TotalBytes: 1 << 62}},
		{Connection: &pb.Connection{LocalAddr: []byte{1, 2, 3}, Direction: 9}, Route: 7},
	}, Losses: []*pb.Counter{{Name: "x", Value: 1}}})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var d pluginhost.BatchDecoder
		for _, raw := range [][]byte{a, b} {
			var w pb.EventBatch
			if proto.Unmarshal(raw, &w) != nil {
				continue
			}
			batch := d.Decode(&w)
			for _, ev := range batch.Events {
				if len(ev.Payload) > pluginhost.MaxRecordBytes {
					t.Fatalf("record of %d bytes passed the bound", len(ev.Payload))
				}
				if ev.Route != sdk.RouteOutput && ev.Route != sdk.RouteStream {
					t.Fatalf("route %v reached the host", ev.Route)
				}
				if ev.Conn.Direction > sdk.DirectionIngress {
					t.Fatalf("direction %v reached the host", ev.Conn.Direction)
				}
			}
		}
	})
}

func TestBatchDecoderCountsBrokenFragments(t *testing.T) {
	cases := []struct {
		name       string
		events     []*pb.Event
		wantEvents int
		wantBroken uint64
		truncated  bool
	}{
		{"missing last piece then a whole event", []*pb.Event{
			{Payload: []byte("ab"), Fragment: &pb.Fragment{RecordId: 1, Index: 0, TotalBytes: 4}},
			{Payload: []byte("z")},
		}, 2, 1, true},
		{"piece of unknown record", []*pb.Event{
			{Payload: []byte("cd"), Fragment: &pb.Fragment{RecordId: 5, Index: 3, Last: true, TotalBytes: 4}},
		}, 0, 1, false},
		{"short total", []*pb.Event{
			{Payload: []byte("ab"), Fragment: &pb.Fragment{RecordId: 1, Index: 0, TotalBytes: 3}},
			{Payload: []byte("cd"), Fragment: &pb.Fragment{RecordId: 1, Index: 1, Last: true, TotalBytes: 3}},
		}, 1, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d pluginhost.BatchDecoder
			b := d.Decode(&pb.EventBatch{Events: tc.events})
			if len(b.Events) != tc.wantEvents {
				t.Fatalf("%d events, want %d", len(b.Events), tc.wantEvents)
			}
			var broken uint64
			for _, c := range b.Losses {
				if c.Name == pluginhost.CounterFragmentsBroken {
					broken = c.Value
				}
			}
			if broken != tc.wantBroken {
				t.Errorf("broken = %d, want %d", broken, tc.wantBroken)
			}
			if tc.wantEvents > 0 {
				_, tr := b.Events[0].Field("truncated")
				if tr != tc.truncated {
					t.Errorf("truncated = %v, want %v", tr, tc.truncated)
				}
			}
		})
	}
}
