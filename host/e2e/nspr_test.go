package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// nsprConfig is a config capturing with the nspr module into the JSON file
// events; extra goes in the module block, config in its config block.
func nsprConfig(t *testing.T, events, extra, config string) string {
	return jsonConfig(t, builtPlugins(t), events, fmt.Sprintf(`module "nspr" {
  %s
  config {
    %s
  }
}
`, extra, config))
}

func requireNSPR(t *testing.T, programs ...string) {
	t.Helper()
	requireCapture(t, append([]string{"tstclnt", "openssl"}, programs...)...)
	if _, err := os.Stat(filepath.Join(builtPlugins(t), "ecaphost-plugin-nspr")); err != nil {
		harness.SkipOrFail(t, "nspr plugin not built: %v", err)
	}
}

// nsprMessage matches the nspr module's decoded HTTP messages of pid (any
// pid when 0).
func nsprMessage(kind string, pid int, match func(record) bool) func(record) bool {
	return func(r record) bool {
		return r.str("module") == "nspr" && r.str("kind") == kind && (pid == 0 || r.num("pid") == pid) && match(r)
	}
}

// tstclntArgs are the arguments of NSS's tstclnt sending the request in
// file to 127.0.0.1:port, accepting the server's self-signed certificate
// (-o) without a certificate database (-D).
func tstclntArgs(t *testing.T, port int, request string) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "request.txt")
	if err := os.WriteFile(file, []byte(request), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"tstclnt", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-o", "-D", "-A", file}
}

// TestNSPRTstclntToSServer: NSS's tstclnt sends a marked request to
// openssl s_server -WWW; the request and the response body show in the
// JSON output, decoded, attributed to tstclnt's comm and pid.
func TestNSPRTstclntToSServer(t *testing.T) {
	requireNSPR(t)
	marker := uniq("nss-body")
	header := uniq("nss-header")
	root := tlspeer.WebRoot(t, map[string]string{"page.txt": marker + "\n"})
	port := tlspeer.SServer(t, root)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, nsprConfig(t, events, "", ""))

	pid, out := runCommand(t, tstclntArgs(t, port, "GET /page.txt HTTP/1.0\r\nX-E2E: "+header+"\r\n\r\n")...)
	if !strings.Contains(out, marker) {
		t.Fatalf("tstclnt did not fetch the page: %s", out)
	}
	req := waitRecord(t, events, 10*time.Second, "tstclnt's request", nsprMessage("http_request", pid, func(r record) bool {
		return r.field("path") == "/page.txt"
	}))
	if req.str("comm") != "tstclnt" || req.field("method") != "GET" || req.field("header.X-E2e") != header {
		t.Errorf("request: %v", req)
	}
	if got := req.remotePort(); got != fmt.Sprint(port) {
		t.Errorf("request connection remote port %q, want the server's %d (%v)", got, port, req.conn())
	}
	if d, _ := req.conn()["direction"].(string); d != "egress" {
		t.Errorf("request direction %q, want egress", d)
	}
	resp := waitRecord(t, events, 10*time.Second, "the response", nsprMessage("http_response", pid, func(r record) bool {
		return strings.Contains(r.payload(), marker)
	}))
	if resp.str("comm") != "tstclnt" || resp.field("status") != "200" || resp.remotePort() != fmt.Sprint(port) {
		t.Errorf("response: %v", resp)
	}
	h.stop()
	// ssl_only (the default): tstclnt's read of its request file and its
	// write of the page to stdout are not captured.
	for _, r := range readJSON(t, events) {
		if r.str("module") == "nspr" && r.num("pid") == pid && r.str("kind") == "tls_data" && r.field("layer") != "ssl" {
			t.Errorf("record of layer %q with ssl_only: %v", r.field("layer"), r)
		}
	}
}

// TestNSPRSelfservServer: NSS's selfserv as the server, curl as the
// client: selfserv's side (the request it reads, the response it writes)
// is captured.
func TestNSPRSelfservServer(t *testing.T) {
	requireNSPR(t, "selfserv", "certutil", "curl")
	spid, port := tlspeer.Selfserv(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, nsprConfig(t, events, "", ""))
	path := "/" + uniq("selfserv")
	_, out := runCommand(t, "curl", "-sk", "--http1.1", "--max-time", "10", fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
	if !strings.Contains(out, "GET "+path) {
		t.Fatalf("curl did not get selfserv's echo: %s", out)
	}
	req := waitRecord(t, events, 10*time.Second, "the request selfserv read", nsprMessage("http_request", spid, func(r record) bool {
		return r.field("path") == path
	}))
	if d, _ := req.conn()["direction"].(string); d != "ingress" || req.str("comm") != "selfserv" {
		t.Errorf("request: %v", req)
	}
	resp := waitRecord(t, events, 15*time.Second, "the response selfserv wrote", nsprMessage("http_response", spid, func(r record) bool {
		return strings.Contains(r.payload(), "GET "+path)
	}))
	if d, _ := resp.conn()["direction"].(string); d != "egress" || resp.field("status") != "200" || resp.str("comm") != "selfserv" {
		t.Errorf("response: %v", resp)
	}
	h.stop()
}

// TestNSPRPIDFilter: with the pid filter on selfserv, tstclnt talking to it
// is not captured, selfserv is (the library is found in its mappings).
func TestNSPRPIDFilter(t *testing.T) {
	requireNSPR(t, "selfserv", "certutil")
	spid, port := tlspeer.Selfserv(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, nsprConfig(t, events, fmt.Sprintf("pid = %d", spid), ""))
	path := "/" + uniq("filtered")
	pid, out := runCommand(t, tstclntArgs(t, port, "GET "+path+" HTTP/1.0\r\n\r\n")...)
	if !strings.Contains(out, "GET "+path) {
		t.Fatalf("tstclnt did not get selfserv's echo: %s", out)
	}
	waitRecord(t, events, 10*time.Second, "selfserv's side", nsprMessage("http_request", spid, func(r record) bool {
		return r.field("path") == path
	}))
	waitRecord(t, events, 15*time.Second, "selfserv's response", nsprMessage("http_response", spid, func(r record) bool {
		return strings.Contains(r.payload(), "GET "+path)
	}))
	h.stop()
	for _, r := range readJSON(t, events) {
		if r.num("pid") == pid || r.str("comm") == "tstclnt" {
			t.Errorf("pid filter %d let tstclnt (%d) through: %v", spid, pid, r)
		}
	}
}

// TestNSPRBadLibPath: a wrong nspr_lib is a diagnostic at validate time.
func TestNSPRBadLibPath(t *testing.T) {
	requireBuilt(t)
	for _, tc := range []struct{ name, config, want string }{
		{"missing file", `nspr_lib = "/nope/libnspr4.so"`, "/nope/libnspr4.so does not exist"},
		{"not NSPR", `nspr_lib = "/bin/true"`, "/bin/true does not define PR_Write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nsprConfig(t, filepath.Join(t.TempDir(), "e.jsonl"), "", tc.config)
			code, out := ecaphost(t, 30*time.Second, "validate", cfg)
			if code != 2 || !strings.Contains(out, "capture.hcl:9:") || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d; want 2 and a diagnostic at capture.hcl:9 saying %q:\n%s", code, tc.want, out)
			}
		})
	}
}
