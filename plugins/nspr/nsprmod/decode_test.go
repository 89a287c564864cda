package nsprmod

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// rawRecord builds a record of function fn, direction dir and layer as the
// kernel sends it, from 127.0.0.1:40000 to 127.0.0.1:443. The decoding
// itself is tested in sdk/tlsrecord; these tests cover what is NSPR's.
func rawRecord(fn, dir uint8, layer uint32, data string) []byte {
	r := tlsrecord.Record{Session: 0x55d0c0ffee00, CallSeq: 1, Total: uint64(len(data)), Fd: -1, Family: 2,
		Lport: 40000, Rport: 443, Fn: fn, Dir: dir, Info: layer}
	r.Hdr = ebpfbase.Header{TimestampNs: 123456789, PID: 4242, TID: 4243, UID: 1000, Kind: tlsrecord.KindData, Len: uint32(len(data))}
	copy(r.Hdr.Comm[:], "tstclnt")
	copy(r.Laddr[:], []byte{127, 0, 0, 1})
	copy(r.Raddr[:], []byte{127, 0, 0, 1})
	copy(r.Data[:], data)
	return r.Bytes()
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name      string
		fn, dir   uint8
		layer     uint32
		wantFn    string
		wantDir   sdk.Direction
		wantLayer string
		wantErr   error
	}{
		{"PR_Write on SSL", 1, tlsrecord.DirEgress, 6, "PR_Write", sdk.DirectionEgress, LayerSSL, nil},
		{"PR_Send on SSL", 2, tlsrecord.DirEgress, 6, "PR_Send", sdk.DirectionEgress, LayerSSL, nil},
		{"PR_Read on a file", 3, tlsrecord.DirIngress, 1, "PR_Read", sdk.DirectionIngress, LayerFile, nil},
		{"PR_Recv on TCP", 4, tlsrecord.DirIngress, 2, "PR_Recv", sdk.DirectionIngress, LayerTCP, nil},
		{"PR_Writev on a pipe", 5, tlsrecord.DirEgress, 5, "PR_Writev", sdk.DirectionEgress, LayerPipe, nil},
		{"UDP", 2, tlsrecord.DirEgress, 3, "PR_Send", sdk.DirectionEgress, LayerUDP, nil},
		{"other layers", 1, tlsrecord.DirEgress, 4, "PR_Write", sdk.DirectionEgress, LayerLayered, nil},
		{"unreadable descriptor", 1, tlsrecord.DirEgress, 0, "PR_Write", sdk.DirectionEgress, LayerUnknown, nil},
		{"unknown layer", 1, tlsrecord.DirEgress, 7, "", 0, "", ErrBadRecord},
		{"huge layer", 1, tlsrecord.DirEgress, 1 << 31, "", 0, "", ErrBadRecord},
		{"function 0", 0, tlsrecord.DirEgress, 6, "", 0, "", ErrBadRecord},
		{"unknown function", 6, tlsrecord.DirEgress, 6, "", 0, "", ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			var ev sdk.Event
			err := m.Decode("", rawRecord(tt.fn, tt.dir, tt.layer, "GET / HTTP/1.1\r\n"), &ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lib := field(&ev, FieldLib); lib != LibNSPR || field(&ev, FieldFn) != tt.wantFn || field(&ev, FieldLayer) != tt.wantLayer {
				t.Errorf("fields %v, want lib nspr, fn %s, layer %s", ev.Fields, tt.wantFn, tt.wantLayer)
			}
			if ev.Kind != KindTLSData || ev.Route != sdk.RouteStream || len(ev.Fields) != 3 {
				t.Errorf("kind %q route %v fields %v", ev.Kind, ev.Route, ev.Fields)
			}
			if ev.Conn.Direction != tt.wantDir || ev.Conn.ID != tlsrecord.ConnID(4242, 0x55d0c0ffee00, 0) ||
				ev.Conn.Remote != netip.MustParseAddrPort("127.0.0.1:443") {
				t.Errorf("connection %+v", ev.Conn)
			}
			if ev.PID != 4242 || ev.Comm != "tstclnt" || ev.Time.IsZero() || string(ev.Payload) != "GET / HTTP/1.1\r\n" {
				t.Errorf("event %+v", ev)
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	m := New()
	decode := func(raw []byte, ev *sdk.Event) error { return m.Decode("", raw, ev) }
	if n := harness.DecodeAllocs(t, decode, rawRecord(2, tlsrecord.DirEgress, 6, "GET / HTTP/1.1\r\n")); n != 0 {
		t.Errorf("Decode allocates %v times per record, want 0", n)
	}
}

// FuzzDecode runs hostile records through the module's Decode (the
// decoder's own fuzz target is in sdk/tlsrecord).
func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(2, tlsrecord.DirEgress, 6, "GET /"))
	f.Add(rawRecord(3, tlsrecord.DirIngress, 1, "HTTP/1.1"))
	f.Add(rawRecord(5, tlsrecord.DirEgress, 99, "x"))
	f.Add([]byte{})
	f.Add(make([]byte, tlsrecord.DataOffset))
	m := New()
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		if err := tlsrecord.CheckDecoded(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if field(&ev, FieldLayer) == "" {
			t.Fatalf("accepted a record without layer: %+v", ev)
		}
	})
}
