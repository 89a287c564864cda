package gotlsmod

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// keyRaw builds a key record as the kernel sends it.
func keyRaw(label string, random int, secret []byte) []byte {
	r := keyRecord{Config: 0xc000100000, LabelLen: uint32(len(label)), RandomLen: keyRandomLen, SecretLen: uint32(len(secret))}
	r.Hdr = ebpfbase.Header{TimestampNs: 1, PID: 77, TID: 78, Kind: kindKey}
	copy(r.Hdr.Comm[:], "server")
	copy(r.Label[:], label)
	r.Random = [32]byte{0: byte(random), 1: byte(random >> 8), 31: byte(random)}
	copy(r.Secret[:], secret)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, &r)
	return b.Bytes()
}

func secretOf(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// keylogModule returns a module in keylog mode writing to a temporary
// file, and the file's path.
func keylogModule(t *testing.T) (*Module, string) {
	m := New()
	m.mode = ModeKeylog
	m.keys.path = filepath.Join(t.TempDir(), "keys.log")
	if err := m.keys.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.keys.close() })
	return m, m.keys.path
}

func TestKeys(t *testing.T) {
	tls13 := []struct {
		label string
		b     byte
	}{{labelCHTS, 1}, {labelSHTS, 2}, {labelCTS, 3}, {labelSTS, 4}}
	t.Run("TLS 1.3 session written once complete", func(t *testing.T) {
		m, path := keylogModule(t)
		var ev sdk.Event
		for i, l := range tls13 {
			ev.Reset()
			if err := m.Decode("", keyRaw(l.label, 9, secretOf(32, l.b)), &ev); err != nil {
				t.Fatal(err)
			}
			complete := i == len(tls13)-1
			if (ev.Kind == KindTLSKeys) != complete {
				t.Fatalf("after %s: event kind %q", l.label, ev.Kind)
			}
		}
		if field(&ev, FieldLogged) != "true" || field(&ev, FieldVersion) != "TLS 1.3" || ev.Route != sdk.RouteOutput || ev.PID != 77 ||
			field(&ev, FieldClientRandom) != "0900"+strings.Repeat("00", 29)+"09" {
			t.Errorf("event %+v", ev)
		}
		got, _ := os.ReadFile(path)
		cr := "0900" + strings.Repeat("00", 29) + "09"
		want := ""
		for _, l := range tls13 {
			want += l.label + " " + cr + " " + hex.EncodeToString(secretOf(32, l.b)) + "\n"
		}
		if string(got) != want {
			t.Errorf("key log:\n%s\nwant:\n%s", got, want)
		}
		// The other end of the same session: not written again.
		for _, l := range tls13 {
			ev.Reset()
			_ = m.Decode("", keyRaw(l.label, 9, secretOf(32, l.b)), &ev)
		}
		if field(&ev, FieldLogged) != "false" {
			t.Errorf("second copy logged: %+v", ev.Fields)
		}
		if again, _ := os.ReadFile(path); !bytes.Equal(again, got) {
			t.Errorf("key log grew: %s", again)
		}
	})
	t.Run("TLS 1.2", func(t *testing.T) {
		m, path := keylogModule(t)
		var ev sdk.Event
		if err := m.Decode("", keyRaw(labelTLS12, 5, secretOf(48, 7)), &ev); err != nil || field(&ev, FieldLogged) != "true" || field(&ev, FieldVersion) != "TLS 1.2" {
			t.Fatalf("%v %+v", err, ev)
		}
		if got, _ := os.ReadFile(path); !strings.HasPrefix(string(got), "CLIENT_RANDOM 05") {
			t.Errorf("key log %q", got)
		}
	})
	t.Run("secrets that fail the checks are not written", func(t *testing.T) {
		m, path := keylogModule(t)
		var ev sdk.Event
		_ = m.Decode("", keyRaw(labelTLS12, 5, secretOf(32, 7)), &ev)
		if field(&ev, FieldLogged) != "false" || !strings.Contains(field(&ev, FieldProblem), "not 48") {
			t.Errorf("short master secret: %+v", ev.Fields)
		}
		for i, l := range tls13 {
			ev.Reset()
			n := 32
			if i == 3 {
				n = 48
			}
			_ = m.Decode("", keyRaw(l.label, 6, secretOf(n, l.b)), &ev)
		}
		if field(&ev, FieldLogged) != "false" || !strings.Contains(field(&ev, FieldProblem), "32 and 48") {
			t.Errorf("mixed lengths: %+v", ev.Fields)
		}
		ev.Reset()
		_ = m.Decode("", keyRaw("EXPORTER_SECRET_X", 6, secretOf(32, 1)), &ev)
		if !strings.Contains(field(&ev, FieldProblem), "unknown key log label") {
			t.Errorf("unknown label: %+v", ev.Fields)
		}
		if m.keys.unverified != 3 {
			t.Errorf("unverified %d, want 3", m.keys.unverified)
		}
		if got, _ := os.ReadFile(path); len(got) != 0 {
			t.Errorf("key log %q", got)
		}
	})
	t.Run("incomplete sessions are counted", func(t *testing.T) {
		m, _ := keylogModule(t)
		var ev sdk.Event
		for i := range maxPending + 10 {
			_ = m.Decode("", keyRaw(labelCHTS, i, secretOf(32, 1)), &ev)
		}
		if len(m.keys.pending) > maxPending || m.keys.incomplete != 10 {
			t.Errorf("%d sessions pending, bound %d; %d counted incomplete", len(m.keys.pending), maxPending, m.keys.incomplete)
		}
		m.keys.finish(nil)
		if m.keys.incomplete != maxPending+10 || len(m.keys.pending) != 0 {
			t.Errorf("incomplete %d, pending %d", m.keys.incomplete, len(m.keys.pending))
		}
	})
}

func field(ev *sdk.Event, k string) string { v, _ := ev.Field(k); return v }

func TestDecodeKeyErrors(t *testing.T) {
	good := keyRaw(labelCHTS, 1, secretOf(32, 1))
	bad := func(f func(r []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	o := ebpfbase.HeaderSize + 8
	for _, tt := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"short", good[:keyRecordSize-1], ebpfbase.ErrShortRecord},
		{"no header", good[:10], ebpfbase.ErrShortRecord},
		{"label too long", bad(func(r []byte) { binary.NativeEndian.PutUint32(r[o:], 33) }), ErrBadRecord},
		{"random not 32", bad(func(r []byte) { binary.NativeEndian.PutUint32(r[o+4:], 31) }), ErrBadRecord},
		{"no secret", bad(func(r []byte) { binary.NativeEndian.PutUint32(r[o+8:], 0) }), ErrBadRecord},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := keylogModule(t)
			var ev sdk.Event
			if err := m.Decode("", tt.raw, &ev); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// dataRaw builds a plaintext record of the module.
func dataRaw(fn, dir uint8, data string) []byte {
	r := tlsrecord.Record{Session: 0xc000200000, Serial: 5, CallSeq: 1, Total: uint64(len(data)), Fd: 7, Family: 2, Lport: 40000, Rport: 443, Fn: fn, Dir: dir}
	r.Hdr = ebpfbase.Header{TimestampNs: 1, PID: 10, TID: 11, Kind: tlsrecord.KindData, Len: uint32(len(data))}
	copy(r.Laddr[:], []byte{127, 0, 0, 1})
	copy(r.Raddr[:], []byte{127, 0, 0, 1})
	copy(r.Data[:], data)
	return r.Bytes()
}

func TestDecodeData(t *testing.T) {
	m := New()
	var ev sdk.Event
	if err := m.Decode("", dataRaw(2, tlsrecord.DirIngress, "GET / HTTP/1.1\r\n"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != KindTLSData || ev.Route != sdk.RouteStream || field(&ev, FieldFn) != "Read" || field(&ev, FieldLib) != LibGo ||
		ev.Conn.Remote.String() != "127.0.0.1:443" || ev.Conn.Direction != sdk.DirectionIngress {
		t.Errorf("event %+v", ev)
	}
	ev.Reset()
	if err := m.Decode("", dataRaw(3, tlsrecord.DirEgress, "x"), &ev); !errors.Is(err, ErrBadRecord) {
		t.Errorf("unknown function: %v", err)
	}
}

// FuzzDecode feeds the module's decoder, in keylog mode (both kinds of
// record go through Decode), anything: it must not panic, and what it
// accepts must be consistent.
func FuzzDecode(f *testing.F) {
	f.Add(dataRaw(1, tlsrecord.DirEgress, "GET / HTTP/1.1\r\n"))
	f.Add(keyRaw(labelCHTS, 1, secretOf(32, 1)))
	f.Add(keyRaw(labelTLS12, 2, secretOf(48, 1)))
	f.Add([]byte{})
	m := New()
	m.mode = ModeKeylog
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		switch ev.Kind {
		case KindTLSData:
			if err := tlsrecord.CheckDecoded(raw, &ev); err != nil {
				t.Fatal(err)
			}
		case KindTLSKeys, kindKeyPart:
			if len(raw) < keyRecordSize {
				t.Fatalf("accepted a key record of %d bytes", len(raw))
			}
		default:
			t.Fatalf("event of kind %q", ev.Kind)
		}
	})
}
