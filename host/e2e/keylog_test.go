package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// loCapture is `tshark -i lo -w file -f "tcp port PORT"`: a recording of
// loopback made independently of ecaphost.
type loCapture struct {
	cmd    *exec.Cmd
	file   string
	stderr *syncBuffer
}

func startLoCapture(t *testing.T, port int) *loCapture {
	t.Helper()
	c := &loCapture{file: filepath.Join(t.TempDir(), "lo.pcapng"), stderr: &syncBuffer{}}
	c.cmd = exec.Command("tshark", "-i", "lo", "-w", c.file, "-f", fmt.Sprintf("tcp port %d", port))
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.stderr.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start capturing: %s", c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func (c *loCapture) stop(t *testing.T) string {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("tshark did not stop: %s", c.stderr.String())
	}
	return c.file
}

// tsharkRead reads file with tshark (opts, then -Y filter) and returns
// the lines of fields.
func tsharkRead(t *testing.T, file string, opts []string, filter string, fields ...string) []string {
	t.Helper()
	args := append(append([]string{"-r", file}, opts...), "-Y", filter, "-T", "fields")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

// keyLogLines reads an NSS key log into its lines by client random.
func keyLogLines(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 {
			out[f[1]] = append(out[f[1]], sc.Text())
		}
	}
	return out
}

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
	capture := startLoCapture(t, port)
	h := startHost(t, opensslConfig(t, events, "", fmt.Sprintf("mode = \"keylog\"\n    keylog_file = %q", keys)))

	url := func(f string) string { return fmt.Sprintf("https://127.0.0.1:%d/%s", port, f) }
	pid13, _ := runCommand(t, "env", "SSLKEYLOGFILE="+curlKeys, "curl", "-sSk", "--tlsv1.3", url("tls13.txt"))
	pid12, _ := runCommand(t, "env", "SSLKEYLOGFILE="+curlKeys, "curl", "-sSk", "--tls-max", "1.2", url("tls12.txt"))
	ev13 := waitRecord(t, events, 10*time.Second, "the TLS 1.3 session's keys", tlsKeys(pid13))
	ev12 := waitRecord(t, events, 10*time.Second, "the TLS 1.2 session's keys", tlsKeys(pid12))
	recorded := capture.stop(t)
	h.stop()

	if ev13.field("version") != "TLS 1.3" || ev12.field("version") != "TLS 1.2" || ev13.field("logged") != "true" {
		t.Errorf("tls_keys events: %v\n%v", ev13, ev12)
	}
	got := tsharkRead(t, recorded, []string{"-o", "tls.keylog_file:" + keys}, "http.request", "http.request.uri")
	if !slices.Equal(got, []string{"/tls13.txt", "/tls12.txt"}) {
		t.Errorf("tshark with ecaphost's key file decoded %q, want /tls13.txt and /tls12.txt", got)
	}
	ours, curls := keyLogLines(t, keys), keyLogLines(t, curlKeys)
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
	got := tsharkRead(t, pcap, nil, "http.request", "http.request.uri", "frame.comment")
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
