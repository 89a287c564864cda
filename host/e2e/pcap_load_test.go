package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// loadResponses is how many responses wrk waits for before it stops
// sending (its thread stops; wrk itself ends after -d): a full-load burst
// whose pcapng (about 70 MB) tshark decrypts in seconds.
const loadResponses = 1000

// TestOpenSSLPcapFullLoad64K is issue 17's pcap check: wrk drives nginx,
// serving 64 KiB over 16 keep-alive TLS connections, as fast as both go
// while pcap mode captures loopback with its default buffer. tshark, given
// nothing but the pcapng, then decrypts every response wrk completed,
// whole (64 KiB of body), each commented with the nginx process that sent
// it, and the host's summary counts no loss.
func TestOpenSSLPcapFullLoad64K(t *testing.T) {
	requireOpenSSL(t, "nginx", "wrk", "tshark")
	body := strings.Repeat("0123456789abcdef", 4096)
	marker := uniq("pcap-load")
	web := tlspeer.WebRoot(t, map[string]string{marker: body})
	port := startNginx(t, web, "keepalive_requests 100000;")
	dir := t.TempDir()
	pcap, events := filepath.Join(dir, "out.pcapng"), filepath.Join(dir, "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "",
		fmt.Sprintf("mode = \"pcap\"\n    pcap_file = %q\n    ifname = \"lo\"\n    port = %d", pcap, port)))

	// wrk stops itself after loadResponses responses.
	script := filepath.Join(dir, "stop.lua")
	lua := fmt.Sprintf("local n = 0\nresponse = function(status, headers, body)\n  n = n + 1\n  if n >= %d then wrk.thread:stop() end\nend\n", loadResponses)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, err := exec.Command("wrk", "-t1", "-c16", "-d5s", "-s", script, fmt.Sprintf("https://127.0.0.1:%d/%s", port, marker)).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	elapsed := time.Since(began)
	m := regexp.MustCompile(`(?m)^\s*(\d+) requests in`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no request count in wrk's output:\n%s", out)
	}
	completed, _ := strconv.Atoi(string(m[1]))
	if completed < 100 || strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		t.Fatalf("wrk completed %d requests in 5 s, or had errors:\n%s", completed, out)
	}
	h.stop()
	noLoss(t, h, "openssl")

	// Every response, whole and decrypted: tshark shows an HTTP response
	// only once its body is reassembled from every TLS record of it.
	whole := wireshark.Fields(t, pcap, nil, "http.response.code == 200 && len(http.file_data) == 65536", "frame.comment")
	requests := wireshark.Fields(t, pcap, nil, fmt.Sprintf("http.request.uri == \"/%s\"", marker), "frame.comment")
	t.Logf("wrk: %d responses in %v; the pcapng: %d requests, %d whole responses decrypted", completed, elapsed.Round(time.Millisecond), len(requests), len(whole))
	if len(whole) < completed || len(requests) < len(whole) {
		t.Errorf("tshark decrypted %d whole responses and %d requests from the pcapng, wrk completed %d", len(whole), len(requests), completed)
	}
	comment := regexp.MustCompile(`^pid=\d+ comm=nginx( |$)`)
	for _, c := range whole {
		if !comment.MatchString(c) {
			t.Errorf("a response's comment is %q, want nginx's pid", c)
			break
		}
	}
	for _, c := range requests {
		if !strings.HasPrefix(c, "pid=") || !strings.Contains(c, " comm=wrk") {
			t.Errorf("a request's comment is %q, want wrk's pid", c)
			break
		}
	}
}
