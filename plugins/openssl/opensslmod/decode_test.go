package opensslmod

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// rawRecord builds a record of function fn and direction dir as the kernel
// sends it, from 127.0.0.1:40000 to 127.0.0.1:443. The decoding itself is
// tested in sdk/tlsrecord; these tests cover what is OpenSSL's.
func rawRecord(fn, dir uint8, data string) []byte {
	r := tlsrecord.Record{Session: 0x55d0c0ffee00, CallSeq: 1, Total: uint64(len(data)), Fd: 5, Family: 2,
		Lport: 40000, Rport: 443, Fn: fn, Dir: dir}
	r.Hdr = ebpfbase.Header{TimestampNs: 123456789, PID: 4242, TID: 4243, UID: 1000, Kind: tlsrecord.KindData, Len: uint32(len(data))}
	copy(r.Hdr.Comm[:], "curl")
	copy(r.Laddr[:], []byte{127, 0, 0, 1})
	copy(r.Raddr[:], []byte{127, 0, 0, 1})
	copy(r.Data[:], data)
	return r.Bytes()
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		fn, dir uint8
		wantFn  string
		wantDir sdk.Direction
		wantErr error
	}{
		{"SSL_write", 1, tlsrecord.DirEgress, "SSL_write", sdk.DirectionEgress, nil},
		{"SSL_read", 2, tlsrecord.DirIngress, "SSL_read", sdk.DirectionIngress, nil},
		{"SSL_write_ex", 3, tlsrecord.DirEgress, "SSL_write_ex", sdk.DirectionEgress, nil},
		{"SSL_read_ex", 4, tlsrecord.DirIngress, "SSL_read_ex", sdk.DirectionIngress, nil},
		{"function 0", 0, tlsrecord.DirEgress, "", 0, ErrBadRecord},
		{"unknown function", 5, tlsrecord.DirEgress, "", 0, ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			var ev sdk.Event
			err := m.Decode("", rawRecord(tt.fn, tt.dir, "GET / HTTP/1.1\r\n"), &ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lib, _ := ev.Field(FieldLib)
			fn, _ := ev.Field(FieldFn)
			if lib != LibOpenSSL || fn != tt.wantFn || ev.Kind != KindTLSData || ev.Route != sdk.RouteStream {
				t.Errorf("lib %q fn %q kind %q route %v, want openssl %s tls_data stream", lib, fn, ev.Kind, ev.Route, tt.wantFn)
			}
			if ev.Conn.Direction != tt.wantDir || ev.Conn.ID != ConnID(4242, 0x55d0c0ffee00, 0) ||
				ev.Conn.Remote != netip.MustParseAddrPort("127.0.0.1:443") {
				t.Errorf("connection %+v", ev.Conn)
			}
			if ev.PID != 4242 || ev.Comm != "curl" || ev.Time.IsZero() || string(ev.Payload) != "GET / HTTP/1.1\r\n" {
				t.Errorf("event %+v", ev)
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	m := New()
	decode := func(raw []byte, ev *sdk.Event) error { return m.Decode("", raw, ev) }
	if n := harness.DecodeAllocs(t, decode, rawRecord(1, tlsrecord.DirEgress, "GET / HTTP/1.1\r\n")); n != 0 {
		t.Errorf("Decode allocates %v times per record, want 0", n)
	}
}

// FuzzDecode runs hostile records through the module's Decode (the
// decoder's own fuzz target is in sdk/tlsrecord).
func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(1, tlsrecord.DirEgress, "GET /"))
	f.Add(rawRecord(4, tlsrecord.DirIngress, "HTTP/1.1"))
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
	})
}
