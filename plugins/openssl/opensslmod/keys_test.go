package opensslmod

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/keylog"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8448, section 3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256).
const (
	rfcHandshakeSecret = "1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b 01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac"
	rfcHelloHash       = "86 0c 06 ed c0 78 58 ee 8e 78 f0 e7 42 8c 58 ed d6 b4 3f 2c a3 e6 e9 5f 02 ed 06 3c f0 e1 ca d8"
	rfcCHTS            = "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21"
	rfcSHTS            = "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38"
	rfcClientFinished  = "b8 0a d0 10 15 fb 2f 0b d6 5f f7 d4 da 5d 6b f8 3f 84 82 1d 1f 87 fd c7 d3 c7 5b 5a 7b 42 d9 c4"
	rfcMasterSecret    = "18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47 80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19"
)

func TestMasterSecretRFC8448(t *testing.T) {
	got := masterSecret(crypto.SHA256, unhex(t, rfcHandshakeSecret))
	if !bytes.Equal(got, unhex(t, rfcMasterSecret)) {
		t.Errorf("master secret %x", got)
	}
}

// tls13Record is a keys record of a TLS 1.3 session with RFC 8448's
// handshake secret and transcript, as OpenSSL 3.0 would leave it: the
// client finished key, and the application secrets of the transcript
// sfh.
func tls13Record(t testing.TB) *keysRecord {
	r := &keysRecord{Version: keylog.VersionTLS13, CipherID: 0x03001301, Algorithm2: 0x00000004 | 0x100}
	r.Hdr = ebpfbase.Header{Kind: kindKeys, PID: 77}
	copy(r.Hdr.Comm[:], "curl")
	for i := range r.ClientRandom {
		r.ClientRandom[i] = byte(i + 1)
	}
	copy(r.HandshakeSecret[:], unhex(t, rfcHandshakeSecret))
	copy(r.HandshakeTrafficHash[:], unhex(t, rfcHelloHash))
	copy(r.ClientFinishedSecret[:], unhex(t, rfcClientFinished))
	sfh := bytes.Repeat([]byte{0x5a}, 32)
	copy(r.ServerFinishedHash[:], sfh)
	master := unhex(t, rfcMasterSecret)
	copy(r.ClientAppTrafficSecret[:], keylog.ExpandLabel(crypto.SHA256, master, "c ap traffic", sfh, 32))
	copy(r.ServerAppTrafficSecret[:], keylog.ExpandLabel(crypto.SHA256, master, "s ap traffic", sfh, 32))
	copy(r.ExporterMasterSecret[:], keylog.ExpandLabel(crypto.SHA256, master, "exp master", sfh, 32))
	// OpenSSL's arrays are 64 bytes; what follows the secret is not read.
	r.HandshakeSecret[40] = 0xff
	return r
}

func tls12Record() *keysRecord {
	r := &keysRecord{Version: keylog.VersionTLS12, MasterKeyLength: 48, CipherID: 0x0300c030}
	r.Hdr = ebpfbase.Header{Kind: kindKeys}
	r.ClientRandom[0] = 0xab
	for i := range r.MasterKey {
		r.MasterKey[i] = byte(0x80 + i)
	}
	return r
}

func TestSessionFromKeys(t *testing.T) {
	s, err := sessionFromKeys(tls13Record(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.ClientHandshakeTrafficSecret, unhex(t, rfcCHTS)) || !bytes.Equal(s.ServerHandshakeTrafficSecret, unhex(t, rfcSHTS)) {
		t.Errorf("handshake traffic secrets %x %x", s.ClientHandshakeTrafficSecret, s.ServerHandshakeTrafficSecret)
	}
	r := tls13Record(t)
	if !bytes.Equal(s.ClientTrafficSecret0, r.ClientAppTrafficSecret[:32]) || !bytes.Equal(s.ServerTrafficSecret0, r.ServerAppTrafficSecret[:32]) ||
		!bytes.Equal(s.ExporterSecret, r.ExporterMasterSecret[:32]) {
		t.Errorf("application secrets %x %x %x", s.ClientTrafficSecret0, s.ServerTrafficSecret0, s.ExporterSecret)
	}
	lines, err := s.AppendLines(nil)
	if err != nil || bytes.Count(lines, []byte("\n")) != 5 {
		t.Errorf("lines %q, %v", lines, err)
	}

	s12, err := sessionFromKeys(tls12Record())
	if err != nil || len(s12.MasterSecret) != 48 || s12.MasterSecret[0] != 0x80 {
		t.Errorf("TLS 1.2: %+v, %v", s12, err)
	}

	tests := []struct {
		name   string
		modify func(r *keysRecord)
		want   error
	}{
		{"KeyUpdate replaced the client's secret: the exporter confirms", func(r *keysRecord) { r.ClientAppTrafficSecret[0] ^= 1 }, nil},
		{"wrong handshake secret", func(r *keysRecord) { r.HandshakeSecret[3] ^= 1 }, errKeysUnverified},
		{"wrong transcript", func(r *keysRecord) { r.HandshakeTrafficHash[3] ^= 1 }, errKeysUnverified},
		{"wrong finished key", func(r *keysRecord) { r.ClientFinishedSecret[0] ^= 1 }, errKeysUnverified},
		{"wrong server finished hash", func(r *keysRecord) { r.ServerFinishedHash[0] ^= 1 }, errKeysUnverified},
		{"SHA-384 says the cipher", func(r *keysRecord) { r.Algorithm2 = 5 }, errKeysUnverified},
		{"unknown digest", func(r *keysRecord) { r.Algorithm2 = 7 }, errKeysUnverified},
		{"cipher id only", func(r *keysRecord) { r.Algorithm2 = 0 }, nil},
		{"not a TLS 1.3 suite", func(r *keysRecord) { r.Algorithm2, r.CipherID = 0, 0x0300c030 }, errKeysUnverified},
		{"read fault", func(r *keysRecord) { r.Hdr.Flags = keysFlagFault }, errKeysIncomplete},
		{"no session", func(r *keysRecord) { r.Hdr.Flags = keysFlagNoSession }, errKeysIncomplete},
		{"no client random", func(r *keysRecord) { r.ClientRandom = [32]byte{} }, errKeysIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tls13Record(t)
			tt.modify(r)
			_, err := sessionFromKeys(r)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
	for name, modify := range map[string]func(r *keysRecord){
		"master key length 0": func(r *keysRecord) { r.MasterKeyLength = 0 },
		"master key zero":     func(r *keysRecord) { r.MasterKey = [48]byte{} },
		"no session":          func(r *keysRecord) { r.Hdr.Flags = keysFlagNoSession },
	} {
		r := tls12Record()
		modify(r)
		if _, err := sessionFromKeys(r); err == nil {
			t.Errorf("TLS 1.2, %s: accepted", name)
		}
	}
}

// keysBytes is r as the kernel sends it.
func keysBytes(r *keysRecord) []byte {
	b, err := binary.Append(nil, binary.NativeEndian, r)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeKeys(t *testing.T) {
	want := tls13Record(t)
	want.Family, want.Lport, want.Rport = 2, 40000, 443
	copy(want.Laddr[:], []byte{127, 0, 0, 1})
	copy(want.Raddr[:], []byte{10, 0, 0, 2})
	raw := keysBytes(want)
	if len(raw) != keysRecordSize {
		t.Fatalf("record of %d bytes, want %d", len(raw), keysRecordSize)
	}
	var got keysRecord
	if err := decodeKeys(raw, &got); err != nil || got != *want {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	l, r := connOf(&got)
	if l.String() != "127.0.0.1:40000" || r.String() != "10.0.0.2:443" {
		t.Errorf("connection %v -> %v", l, r)
	}
	if err := decodeKeys(raw[:keysRecordSize-1], &got); !errors.Is(err, ebpfbase.ErrShortRecord) {
		t.Errorf("short: %v", err)
	}
	other := bytes.Clone(raw)
	binary.NativeEndian.PutUint32(other[20:], 1)
	if err := decodeKeys(other, &got); !errors.Is(err, errBadKeys) {
		t.Errorf("kind 1: %v", err)
	}
}

// TestKeysDecodeWritesOnce: the module's Decode in keylog mode writes a
// session's lines once however often its record comes (both ends of a
// connection probed), and emits a tls_keys event with no secret.
func TestKeysDecodeWritesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.log")
	m := New()
	m.mode = ModeKeylog
	m.keys.keylogPath = path
	m.keys.layouts = []targetLayout{{row: "3.0-3.1"}}
	if err := m.keys.open(ModeKeylog, nil, nil); err != nil {
		t.Fatal(err)
	}
	defer m.keys.close()
	raw := keysBytes(tls13Record(t))
	var logged []string
	for i := 0; i < 3; i++ {
		var ev sdk.Event
		if err := m.Decode("", raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != KindTLSKeys || ev.Route != sdk.RouteOutput || ev.PID != 77 || len(ev.Payload) != 0 {
			t.Errorf("event %+v", ev)
		}
		v, _ := ev.Field(FieldLogged)
		logged = append(logged, v)
		for _, f := range ev.Fields {
			for _, secret := range []string{rfcCHTS, rfcHandshakeSecret} {
				if strings.Contains(f.Value, strings.ReplaceAll(secret, " ", "")) {
					t.Errorf("field %s carries a secret", f.Key)
				}
			}
		}
		if ver, _ := ev.Field(FieldVersion); ver != "TLS 1.3" {
			t.Errorf("version %q", ver)
		}
	}
	if strings.Join(logged, ",") != "true,false,false" {
		t.Errorf("logged %v", logged)
	}
	var ev sdk.Event
	bad := tls13Record(t)
	bad.ClientRandom[0] = 0xee
	bad.HandshakeSecret[0] ^= 1
	if err := m.Decode("", keysBytes(bad), &ev); err != nil {
		t.Fatal(err)
	}
	if p, _ := ev.Field(FieldProblem); !strings.Contains(p, "failed the check") || m.keys.unverified != 1 {
		t.Errorf("unverified session: problem %q, counted %d", p, m.keys.unverified)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 5 || !strings.Contains(string(data), "CLIENT_HANDSHAKE_TRAFFIC_SECRET 0102") {
		t.Errorf("key file:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode())
	}
}

func FuzzDecodeKeys(f *testing.F) {
	f.Add(keysBytes(tls13Record(f)))
	f.Add(keysBytes(tls12Record()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r keysRecord
		if err := decodeKeys(raw, &r); err != nil {
			return
		}
		s, err := sessionFromKeys(&r)
		if err == nil {
			if _, err := s.AppendLines(nil); err != nil {
				t.Errorf("checked session without lines: %v", err)
			}
		}
		var ev sdk.Event
		fillKeysEvent(new(ebpfbase.Stamper), &r, "x", keysOutcome{}, &ev)
	})
}
