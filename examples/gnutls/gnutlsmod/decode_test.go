package gnutlsmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// rawRecord encodes r as the kernel sends it: the fixed fields and
// r.Hdr.Len bytes of data.
func rawRecord(t testing.TB, r *tlsrecord.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[:tlsrecord.DataOffset+int(r.Hdr.Len)]
}

func record(fn, dir uint8, data string) *tlsrecord.Record {
	r := &tlsrecord.Record{Session: 0x5555aaaa0000, Serial: 77, CallSeq: 1, Total: uint64(len(data)), Fn: fn, Dir: dir, Fd: 3, Family: 2, Lport: 40000, Rport: 443}
	r.Hdr = ebpfbase.Header{TimestampNs: 1, PID: 10, TID: 11, UID: 0, Kind: tlsrecord.KindData, Len: uint32(len(data))}
	copy(r.Hdr.Comm[:], "gnutls-cli")
	copy(r.Laddr[:], []byte{127, 0, 0, 1})
	copy(r.Raddr[:], []byte{127, 0, 0, 2})
	copy(r.Data[:], data)
	return r
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		rec     *tlsrecord.Record
		wantFn  string
		wantDir sdk.Direction
	}{
		{"send", record(1, tlsrecord.DirEgress, "GET /file HTTP/1.0\r\n\r\n"), "gnutls_record_send", sdk.DirectionEgress},
		{"recv", record(2, tlsrecord.DirIngress, "HTTP/1.0 200 ok\r\n\r\nhello"), "gnutls_record_recv", sdk.DirectionIngress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			var ev sdk.Event
			if err := m.Decode("", rawRecord(t, tt.rec), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Kind != tlsrecord.KindTLSData || ev.Route != sdk.RouteStream || ev.PID != 10 || ev.TID != 11 || ev.Comm != "gnutls-cli" {
				t.Errorf("event %+v", ev)
			}
			if string(ev.Payload) != string(tt.rec.Data[:tt.rec.Hdr.Len]) {
				t.Errorf("payload %q", ev.Payload)
			}
			if lib, _ := ev.Field(tlsrecord.FieldLib); lib != LibGnuTLS {
				t.Errorf("lib %q", lib)
			}
			if fn, _ := ev.Field(tlsrecord.FieldFn); fn != tt.wantFn {
				t.Errorf("fn %q, want %s", fn, tt.wantFn)
			}
			want := sdk.Connection{
				ID:        tlsrecord.ConnID(10, tt.rec.Session, tt.rec.Serial),
				Local:     netip.MustParseAddrPort("127.0.0.1:40000"),
				Remote:    netip.MustParseAddrPort("127.0.0.2:443"),
				Direction: tt.wantDir,
			}
			if ev.Conn != want {
				t.Errorf("connection %+v, want %+v", ev.Conn, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := rawRecord(t, record(1, tlsrecord.DirEgress, "hello"))
	unknownFn := rawRecord(t, record(3, tlsrecord.DirEgress, "hello"))
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ebpfbase.ErrShortRecord},
		{"header only", good[:ebpfbase.HeaderSize], ebpfbase.ErrShortRecord},
		{"data cut", good[:len(good)-1], ebpfbase.ErrShortRecord},
		{"unknown function", unknownFn, tlsrecord.ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev sdk.Event
			if err := New().Decode("", tt.raw, &ev); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(f, record(1, tlsrecord.DirEgress, "GET / HTTP/1.1\r\n\r\n")))
	f.Add(rawRecord(f, record(2, tlsrecord.DirIngress, "")))
	f.Add([]byte{})
	m := New()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev sdk.Event
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		if err := tlsrecord.CheckDecoded(raw, &ev); err != nil {
			t.Fatal(err)
		}
	})
}
