package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

func tlsKeys(pid int) func(record) bool {
	return func(r record) bool {
		return r.str("module") == "openssl" && r.str("kind") == "tls_keys" && r.num("pid") == pid
	}
}

// TestOpenSSLKeylogDecryptsCapture: with ecaphost in keylog mode, tshark
// records loopback on its own while curl fetches from openssl s_server
// over TLS 1.3 and over TLS 1.2; the key file ecaphost wrote decrypts
// both requests in tshark, has one set of lines per session, and for
// curl's sessions exactly the lines of curl's SSLKEYLOGFILE.
func TestOpenSSLKeylogDecryptsCapture(t *testing.T) {
	requireOpenSSL(t, "tshark", "env")
	root := webRoot(t, map[string]string{"tls13.txt": "thirteen\n", "tls12.txt": "twelve\n"})
	port := tlspeer.SServer(t, root)
	dir := t.TempDir()
	keys, curlKeys := filepath.Join(dir, "keys.log"), filepath.Join(dir, "curl-keys.log")
	events := filepath.Join(dir, "events.jsonl")
	capture := wireshark.Start(t, port)
	h := startHost(t, opensslConfig(t, events, "", fmt.Sprintf("mode = \"keylog\"\n    keylog_file = %q", keys)))

	url := func(f string) string { return fmt.Sprintf("https://127.0.0.1:%d/%s", port, f) }
	pid13, _ := runCommand(t, "env", "SSLKEYLOGFILE="+curlKeys, "curl", "-sSk", "--tlsv1.3", url("tls13.txt"))
	pid12, _ := runCommand(t, "env", "SSLKEYLOGFILE="+curlKeys, "curl", "-sSk", "--tls-max", "1.2", url("tls12.txt"))
	ev13 := waitRecord(t, events, 10*time.Second, "the TLS 1.3 session's keys", tlsKeys(pid13))
	ev12 := waitRecord(t, events, 10*time.Second, "the TLS 1.2 session's keys", tlsKeys(pid12))
	recorded := capture.Stop(t)
	h.stop()

	// At stop the key modes' fallback read its maps after the base had
	// closed them ("get next key: bad file descriptor", seen in CI).
	if log := h.stderr.String(); strings.Contains(log, "bad file descriptor") {
		t.Errorf("the plugin used a closed descriptor at stop:\n%s", log)
	}
	if ev13.field("version") != "TLS 1.3" || ev12.field("version") != "TLS 1.2" || ev13.field("logged") != "true" {
		t.Errorf("tls_keys events: %v\n%v", ev13, ev12)
	}
	got := wireshark.Fields(t, recorded, []string{"-o", "tls.keylog_file:" + keys}, "http.request", "http.request.uri")
	if !slices.Equal(got, []string{"/tls13.txt", "/tls12.txt"}) {
		t.Errorf("tshark with ecaphost's key file decoded %q, want /tls13.txt and /tls12.txt", got)
	}
	ours, curls := wireshark.KeyLogLines(t, keys), wireshark.KeyLogLines(t, curlKeys)
	for cr, ls := range ours {
		labels := map[string]bool{}
		for _, l := range ls {
			labels[strings.Fields(l)[0]] = true
		}
		if n := len(ls); (n != 1 && n != 5) || len(labels) != n {
			t.Errorf("session %s: %d lines, want one set (1 or 5, each label once): %q", cr, n, ls)
		}
	}
	for _, ev := range []record{ev13, ev12} {
		cr := ev.field("client_random")
		a, b := slices.Clone(ours[cr]), slices.Clone(curls[cr])
		sort.Strings(a)
		sort.Strings(b)
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("session %s: ecaphost wrote\n%s\ncurl wrote\n%s", cr, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
	if st, err := os.Stat(keys); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file %v: %v", st.Mode(), err)
	}
}

// TestOpenSSLPcapDecryptsItself: in pcap mode the pcapng file ecaphost
// wrote, read by tshark alone, shows both requests decrypted, and the
// request packets' comments name curl's pid.
func TestOpenSSLPcapDecryptsItself(t *testing.T) {
	requireOpenSSL(t, "tshark")
	root := webRoot(t, map[string]string{"tls13.txt": "thirteen\n", "tls12.txt": "twelve\n"})
	port := tlspeer.SServer(t, root)
	dir := t.TempDir()
	pcap, events := filepath.Join(dir, "out.pcapng"), filepath.Join(dir, "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "", fmt.Sprintf("mode = \"pcap\"\n    pcap_file = %q\n    ifname = \"lo\"\n    port = %d", pcap, port)))

	url := func(f string) string { return fmt.Sprintf("https://127.0.0.1:%d/%s", port, f) }
	pid13, _ := runCommand(t, "curl", "-sSk", "--tlsv1.3", url("tls13.txt"))
	pid12, _ := runCommand(t, "curl", "-sSk", "--tls-max", "1.2", url("tls12.txt"))
	waitRecord(t, events, 10*time.Second, "the TLS 1.3 session's keys", tlsKeys(pid13))
	waitRecord(t, events, 10*time.Second, "the TLS 1.2 session's keys", tlsKeys(pid12))
	h.stop()

	if st, err := os.Stat(pcap); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pcapng file: %v", err)
	}
	got := wireshark.Fields(t, pcap, nil, "http.request", "http.request.uri", "frame.comment")
	want := []string{fmt.Sprintf("/tls13.txt\tpid=%d comm=curl", pid13), fmt.Sprintf("/tls12.txt\tpid=%d comm=curl", pid12)}
	if !slices.Equal(got, want) {
		t.Errorf("tshark read %q from ecaphost's pcapng, want %q", got, want)
	}
}

// TestOpenSSLUnknownVersionRefused: a libssl whose libcrypto says OpenSSL
// 9.9.9 is refused in keylog mode by `ecaphost validate`, naming the
// version and how to override.
func TestOpenSSLUnknownVersionRefused(t *testing.T) {
	requireBuilt(t)
	libssl := systemLibssl(t)
	libcrypto := filepath.Join(filepath.Dir(libssl), "libcrypto.so.3")
	data, err := os.ReadFile(libcrypto)
	if err != nil {
		harness.SkipOrFail(t, "no libcrypto.so.3 beside %s: %v", libssl, err)
	}
	i := bytes.Index(data, []byte("OpenSSL 3."))
	if i < 0 {
		t.Fatalf("no version text in %s", libcrypto)
	}
	end := i + bytes.IndexByte(data[i+8:], ' ') + 8 // after the number
	fake := []byte("OpenSSL 9.9.9")
	fake = append(fake, bytes.Repeat([]byte(" "), end-i-len(fake))...)
	copy(data[i:end], fake)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libcrypto.so.3"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	lib, err := os.ReadFile(libssl)
	if err != nil {
		t.Fatal(err)
	}
	fakeSSL := filepath.Join(dir, "libssl.so.3")
	if err := os.WriteFile(fakeSSL, lib, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := opensslConfig(t, filepath.Join(t.TempDir(), "e.jsonl"), "",
		fmt.Sprintf("mode = \"keylog\"\n    keylog_file = %q\n    libssl = %q", filepath.Join(dir, "keys.log"), fakeSSL))
	code, out := ecaphost(t, 30*time.Second, "validate", cfg)
	for _, want := range []string{"OpenSSL 9.9.9", "openssl_version", "offsets"} {
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("exit %d; want 2 and a diagnostic naming %q:\n%s", code, want, out)
		}
	}
}
