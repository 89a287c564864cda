package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// buildGnuTLSPlugin builds examples/gnutls as a third party builds a
// module — its own Go module, outside go.work, GOWORK=off — into a new
// plugin directory, and returns the directory.
func buildGnuTLSPlugin(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		harness.SkipOrFail(t, "no go command to build examples/gnutls")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ecaphost-plugin-gnutls")
	cmd := exec.Command(goCmd, "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repoRoot(t), "examples", "gnutls")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/gnutls with GOWORK=off: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGnuTLSOutOfTreePlugin is the acceptance of a module built outside
// the workspace: the unchanged bin/ecaphost runs examples/gnutls from a
// plugin directory of its own, gnutls-cli fetches a file from openssl
// s_server -WWW, and the host decodes the plaintext the module captured
// into the HTTP request and response in its JSON output.
func TestGnuTLSOutOfTreePlugin(t *testing.T) {
	requireCapture(t, "gnutls-cli", "openssl")
	plugins := buildGnuTLSPlugin(t)
	marker := uniq("gnutls-e2e")
	port := tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"file.txt": marker + "\n"}))
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, jsonConfig(t, plugins, events, `module "gnutls" {
  comm = "gnutls-cli"
}
`))

	cli := exec.Command("gnutls-cli", "--insecure", "-p", fmt.Sprint(port), "127.0.0.1")
	cli.Stdin = strings.NewReader("GET /file.txt HTTP/1.0\r\n\r\n")
	out, err := cli.CombinedOutput()
	if err != nil || !strings.Contains(string(out), marker) {
		t.Fatalf("gnutls-cli did not fetch the file: %v\n%s", err, out)
	}
	pid := cli.Process.Pid
	gnutls := func(kind string, match func(record) bool) func(record) bool {
		return func(r record) bool {
			return r.str("module") == "gnutls" && r.str("kind") == kind && r.num("pid") == pid && match(r)
		}
	}
	req := waitRecord(t, events, 10*time.Second, "gnutls-cli's request", gnutls("http_request", func(r record) bool {
		return r.field("path") == "/file.txt"
	}))
	if req.field("method") != "GET" || req.str("comm") != "gnutls-cli" || req.remotePort() != fmt.Sprint(port) {
		t.Errorf("request: %v", req)
	}
	resp := waitRecord(t, events, 10*time.Second, "the response", gnutls("http_response", func(r record) bool {
		return strings.Contains(r.payload(), marker)
	}))
	if resp.field("status") != "200" || resp.remotePort() != fmt.Sprint(port) {
		t.Errorf("response: %v", resp)
	}
	t.Logf("request: %v\nresponse: %v", req, resp)
	h.stop()
}
