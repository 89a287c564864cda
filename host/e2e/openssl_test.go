package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

func opensslConfig(t *testing.T, events, extra, config string) string {
	return jsonConfig(t, builtPlugins(t), events, fmt.Sprintf(`module "openssl" {
  %s
  config {
    %s
  }
}
`, extra, config))
}

func requireOpenSSL(t *testing.T, programs ...string) {
	t.Helper()
	requireCapture(t, append([]string{"curl", "openssl"}, programs...)...)
	if _, err := os.Stat(filepath.Join(builtPlugins(t), "ecaphost-plugin-openssl")); err != nil {
		harness.SkipOrFail(t, "openssl plugin not built: %v", err)
	}
}

// systemLibssl is the libssl.so.3 the loader gives programs.
func systemLibssl(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ldconfig", "-p").Output()
	if err != nil {
		t.Fatalf("ldconfig -p: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "libssl.so.3 ") && strings.Contains(l, "x86-64") {
			if i := strings.LastIndex(l, "=> "); i >= 0 {
				return strings.TrimSpace(l[i+3:])
			}
		}
	}
	t.Fatalf("no libssl.so.3 in ldconfig -p")
	return ""
}

func (r record) conn() map[string]any { c, _ := r["connection"].(map[string]any); return c }

// remotePort is the port of the connection's remote address.
func (r record) remotePort() string {
	s, _ := r.conn()["remote"].(string)
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func httpMessage(kind string, pid int, match func(record) bool) func(record) bool {
	return func(r record) bool {
		return r.str("module") == "openssl" && r.str("kind") == kind && (pid == 0 || r.num("pid") == pid) && match(r)
	}
}

func TestOpenSSLCurlToSServer(t *testing.T) {
	requireOpenSSL(t)
	marker := uniq("body-marker")
	root := tlspeer.WebRoot(t, map[string]string{"page.txt": marker + "\n"})
	port := tlspeer.SServer(t, root)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "", ""))

	pid, out := runCommand(t, "curl", "-sk", "--http1.1", "-H", "X-E2E: "+marker, fmt.Sprintf("https://127.0.0.1:%d/page.txt", port))
	if !strings.Contains(out, marker) {
		t.Fatalf("curl did not fetch the page: %s", out)
	}
	req := waitRecord(t, events, 10*time.Second, "curl's request", httpMessage("http_request", pid, func(r record) bool {
		return r.field("path") == "/page.txt"
	}))
	if req.field("method") != "GET" || req.field("header.X-E2e") != marker || !strings.Contains(req.payload(), "X-E2E: "+marker) {
		t.Errorf("request fields: %v", req)
	}
	if got := req.remotePort(); got != fmt.Sprint(port) {
		t.Errorf("request connection remote port %q, want the server's %d (%v)", got, port, req.conn())
	}
	if d, _ := req.conn()["direction"].(string); d != "egress" {
		t.Errorf("request direction %q, want egress", d)
	}
	resp := waitRecord(t, events, 10*time.Second, "the response", httpMessage("http_response", pid, func(r record) bool {
		return strings.Contains(r.payload(), marker)
	}))
	if resp.field("status") != "200" || resp.remotePort() != fmt.Sprint(port) {
		t.Errorf("response: status %q port %q", resp.field("status"), resp.remotePort())
	}
	h.stop()
}

func TestOpenSSLHTTP2WithNginx(t *testing.T) {
	requireOpenSSL(t, "nginx")
	marker := uniq("h2")
	root := tlspeer.WebRoot(t, map[string]string{"h2.txt": marker})
	port := startNginx(t, root, `add_header X-E2E-Header "`+marker+`";`)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "comm = \"curl\"", ""))

	pid, out := runCommand(t, "curl", "-sk", "--http2", fmt.Sprintf("https://127.0.0.1:%d/h2.txt", port))
	if out != marker {
		t.Fatalf("curl --http2 got %q", out)
	}
	req := waitRecord(t, events, 10*time.Second, "the HTTP/2 request", httpMessage("http_request", pid, func(r record) bool {
		return r.field("path") == "/h2.txt"
	}))
	if req.field("proto") != "HTTP/2" || req.field("method") != "GET" || req.field("stream_id") == "" {
		t.Errorf("request fields: %v", req["fields"])
	}
	resp := waitRecord(t, events, 10*time.Second, "the HTTP/2 response", httpMessage("http_response", pid, func(r record) bool {
		return r.field("stream_id") == req.field("stream_id") && r.field("status") == "200"
	}))
	if resp.field("header.X-E2e-Header") != marker || !strings.Contains(resp.payload(), marker) {
		t.Errorf("response lacks the decoded header or body: %v", resp)
	}
	h.stop()
}

func TestOpenSSLLargePOSTBodyComplete(t *testing.T) {
	requireOpenSSL(t)
	body := make([]byte, 1<<20)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(body)
	got := make(chan [32]byte, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- sha256.Sum256(b)
		fmt.Fprint(w, "received")
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "body.bin")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "comm = \"curl\"", ""))
	pid, out := runCommand(t, "curl", "-sk", "--http1.1", "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
		"--data-binary", "@"+file, srv.URL+"/upload")
	if out != "received" || <-got != want {
		t.Fatalf("the server did not get the body: %q", out)
	}
	req := waitRecord(t, events, 15*time.Second, "the 1 MiB POST", httpMessage("http_request", pid, func(r record) bool {
		return r.field("method") == "POST"
	}))
	raw := []byte(req.payload())
	if b64, ok := req["payload_b64"].(string); ok {
		raw = decodeB64(t, b64)
	}
	i := bytes.Index(raw, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatalf("no header end in the captured request (%d bytes)", len(raw))
	}
	captured := raw[i+4:]
	if sum := sha256.Sum256(captured); sum != want {
		t.Errorf("captured body: %d bytes, sha256 %s; sent %d bytes, sha256 %s",
			len(captured), hex.EncodeToString(sum[:]), len(body), hex.EncodeToString(want[:]))
	}
	h.stop()
}

func TestOpenSSLGzipResponseDecoded(t *testing.T) {
	requireOpenSSL(t, "nginx")
	marker := uniq("gzip-me")
	text := strings.Repeat(marker+" is compressible text\n", 50)
	root := tlspeer.WebRoot(t, map[string]string{"z.txt": text})
	port := startNginx(t, root, "gzip on; gzip_types text/plain; gzip_min_length 1;")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "comm = \"curl\"", ""))
	pid, out := runCommand(t, "curl", "-sk", "--http1.1", "--compressed", fmt.Sprintf("https://127.0.0.1:%d/z.txt", port))
	if out != text {
		t.Fatalf("curl got %d bytes, want the %d of the file", len(out), len(text))
	}
	resp := waitRecord(t, events, 10*time.Second, "the gzip response", httpMessage("http_response", pid, func(r record) bool {
		return r.field("header.Content-Encoding") == "gzip"
	}))
	if !strings.Contains(resp.payload(), marker+" is compressible text") {
		t.Errorf("response body not shown decoded: %.300q", resp.payload())
	}
	if resp.field("content_encoding") != "gzip" {
		t.Errorf("content_encoding field %q, want gzip", resp.field("content_encoding"))
	}
	h.stop()
}

func TestOpenSSLPIDFilter(t *testing.T) {
	requireOpenSSL(t)
	root := tlspeer.WebRoot(t, map[string]string{"a.txt": "A", "b.txt": "B"})
	port := tlspeer.SServer(t, root)
	watched := holdCommand(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/a.txt", port))
	other := holdCommand(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/b.txt", port))
	events := filepath.Join(t.TempDir(), "events.jsonl")
	// The watched pid is still a shell waiting to exec curl: it maps no
	// libssl yet, so name the one curl will load.
	h := startHost(t, opensslConfig(t, events, fmt.Sprintf("pid = %d", watched.pid()), fmt.Sprintf("libssl = %q", systemLibssl(t))))
	other.release()
	watched.release()
	other.wait(t)
	watched.wait(t)
	waitRecord(t, events, 10*time.Second, "the watched curl's request", httpMessage("http_request", watched.pid(), func(r record) bool {
		return r.field("path") == "/a.txt"
	}))
	h.stop()
	for _, r := range readJSON(t, events) {
		if r.num("pid") == other.pid() || r.field("path") == "/b.txt" {
			t.Errorf("pid filter %d let through: %v", watched.pid(), r)
		}
	}
}

func TestOpenSSLBadLibsslPath(t *testing.T) {
	requireBuilt(t)
	cases := []struct{ name, config, want string }{
		{"missing file", `libssl = "/nope/libssl.so.3"`, "/nope/libssl.so.3"},
		{"not a libssl", `libssl = "/bin/true"`, "/bin/true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := opensslConfig(t, filepath.Join(t.TempDir(), "e.jsonl"), "", tc.config)
			code, out := ecaphost(t, 30*time.Second, "validate", cfg)
			if code != 2 || !strings.Contains(out, "capture.hcl:9:") || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d; want 2 and a diagnostic at capture.hcl:9 naming %s:\n%s", code, tc.want, out)
			}
		})
	}
}
