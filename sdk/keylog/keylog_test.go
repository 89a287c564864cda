package keylog

import (
	"crypto"
	_ "crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHandshakeTrafficSecretsRFC8448 checks the derivation against the
// "Simple 1-RTT Handshake" trace of RFC 8448, section 3.
func TestHandshakeTrafficSecretsRFC8448(t *testing.T) {
	hs := unhex(t, "1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b 01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac")
	transcript := unhex(t, "86 0c 06 ed c0 78 58 ee 8e 78 f0 e7 42 8c 58 ed d6 b4 3f 2c a3 e6 e9 5f 02 ed 06 3c f0 e1 ca d8")
	c, s := HandshakeTrafficSecrets(crypto.SHA256, hs, transcript)
	if want := "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21"; hex.EncodeToString(c) != want {
		t.Errorf("client handshake traffic secret %x, want %s", c, want)
	}
	if want := "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"; hex.EncodeToString(s) != want {
		t.Errorf("server handshake traffic secret %x, want %s", s, want)
	}
}

func TestWriterOncePerSessionAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var cr [32]byte
	cr[0], cr[31] = 0xab, 0xcd
	tls12 := &Session{ClientRandom: cr, Version: VersionTLS12, MasterSecret: []byte{1, 2, 3}}
	tls13 := &Session{ClientRandom: [32]byte{1}, Version: VersionTLS13,
		ClientHandshakeTrafficSecret: []byte{1}, ServerHandshakeTrafficSecret: []byte{2},
		ClientTrafficSecret0: []byte{3}, ServerTrafficSecret0: []byte{4}, ExporterSecret: []byte{5}}
	for i, tc := range []struct {
		s     *Session
		wrote bool
	}{{tls12, true}, {tls12, false}, {tls13, true}, {tls13, false}} {
		wrote, err := w.Write(tc.s)
		if err != nil || wrote != tc.wrote {
			t.Fatalf("write %d: wrote=%v err=%v, want %v", i, wrote, err, tc.wrote)
		}
	}
	if _, err := w.Write(&Session{Version: VersionTLS13}); err != ErrNoSecret {
		t.Errorf("a session without secrets: err = %v, want ErrNoSecret", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "CLIENT_RANDOM ab" + strings.Repeat("00", 30) + "cd 010203\n" +
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET 01" + strings.Repeat("00", 31) + " 01\n" +
		"SERVER_HANDSHAKE_TRAFFIC_SECRET 01" + strings.Repeat("00", 31) + " 02\n" +
		"CLIENT_TRAFFIC_SECRET_0 01" + strings.Repeat("00", 31) + " 03\n" +
		"SERVER_TRAFFIC_SECRET_0 01" + strings.Repeat("00", 31) + " 04\n" +
		"EXPORTER_SECRET 01" + strings.Repeat("00", 31) + " 05\n"
	if string(b) != want {
		t.Errorf("key log:\n%s\nwant:\n%s", b, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	if w.Sessions() != 2 {
		t.Errorf("Sessions() = %d, want 2", w.Sessions())
	}
}

// TestWriterFullDiskLeavesWholeLines: on a 4 KiB tmpfs the key log fills
// in the middle of a session's lines; the write fails and the file holds
// whole lines only.
func TestWriterFullDiskLeavesWholeLines(t *testing.T) {
	if os.Geteuid() != 0 {
		harness.SkipOrFail(t, "needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4k,mode=0700", "keylog-test", dir).CombinedOutput(); err != nil {
		harness.SkipOrFail(t, "mounting a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	w, err := Create(filepath.Join(dir, "keys.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	secret := make([]byte, 48)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write(&Session{ClientRandom: [32]byte{byte(i), 1}, Version: VersionTLS13,
			ClientHandshakeTrafficSecret: secret, ServerHandshakeTrafficSecret: secret,
			ClientTrafficSecret0: secret, ServerTrafficSecret0: secret, ExporterSecret: secret})
	}
	if werr == nil {
		t.Fatal("100 sessions fit in 4 KiB")
	}
	b, err := os.ReadFile(filepath.Join(dir, "keys.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' || strings.Count(string(b), "\n")%5 != 0 {
		t.Errorf("after %v the key log holds %d bytes, %d lines, ending %q: want whole sessions", werr, len(b), strings.Count(string(b), "\n"), b[max(0, len(b)-20):])
	}
}
