package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// summaryCounter returns the value of the loss counter name on the
// module's line of the exit summary, -1 when it is not there.
func summaryCounter(out, module, name string) int {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == module {
			if m := regexp.MustCompile(`\b` + name + `=(\d+)`).FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	return -1
}

// logSummary logs the exit summary's table and stream line.
func logSummary(t *testing.T, out string) {
	if i := strings.LastIndex(out, "MODULE  "); i >= 0 {
		t.Logf("exit summary:\n%s", out[i:])
	}
}

// connID is the connection id of a JSON record.
func (r record) connID() float64 { id, _ := r.conn()["id"].(float64); return id }

// TestOpenSSLMaxDataMarksTruncated: with max_data = 4096, curl fetching
// a 64 KiB file from nginx over HTTP/1.1 gives, on both sides, a request
// and a response decoded, the response's body cut to what was copied and
// marked truncated with its real length; the exit summary counts the cut
// records and bytes apart from the losses.
func TestOpenSSLMaxDataMarksTruncated(t *testing.T) {
	requireOpenSSL(t, "nginx")
	marker := uniq("maxdata")
	body := strings.Repeat(marker+"\n", 65536/(len(marker)+1)+1)[:65536]
	root := tlspeer.WebRoot(t, map[string]string{marker + ".txt": body})
	port := startNginx(t, root, "")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "", "max_data = 4096"))

	url := fmt.Sprintf("https://127.0.0.1:%d/%s.txt", port, marker)
	pid, out := runCommand(t, "curl", "-sk", "--http1.1", url, "-o", "/dev/null", "-w", "%{size_download}")
	if out != "65536" {
		t.Fatalf("curl fetched %q bytes", out)
	}
	path := "/" + marker + ".txt"
	byCurl := waitRecord(t, events, 15*time.Second, "curl's request", httpMessage("http_request", pid, func(r record) bool {
		return r.field("path") == path
	}))
	byNginx := waitRecord(t, events, 15*time.Second, "nginx's request", httpMessage("http_request", 0, func(r record) bool {
		return r.str("comm") == "nginx" && r.field("path") == path
	}))
	for _, req := range []record{byCurl, byNginx} {
		side := req.str("comm")
		resp := waitRecord(t, events, 15*time.Second, side+"'s response", httpMessage("http_response", req.num("pid"), func(r record) bool {
			return r.connID() == req.connID()
		}))
		head, _, ok := strings.Cut(resp.payload(), "\r\n\r\n")
		realLen := strconv.Itoa(len(head) + 4 + 65536)
		if !ok || resp.field("status") != "200" || resp.field("truncated") != "true" || resp.field("payload_bytes") != realLen ||
			resp.field("wire_body_bytes") != "65536" || resp.field("incomplete") != "" {
			t.Errorf("%s's response: want status 200, truncated, payload_bytes %s, wire_body_bytes 65536; got %v", side, realLen, resp["fields"])
		}
		shown := resp.num("payload_len") - len(head) - 4
		if shown <= 0 || shown >= 65536 || !strings.HasPrefix(body, strings.SplitN(resp.payload(), "\r\n\r\n", 2)[1][:min(shown, 64)]) ||
			resp.field("body_bytes") != strconv.Itoa(shown) {
			t.Errorf("%s's response shows %d bytes of body (body_bytes %s), want the first part of the 65536", side, shown, resp.field("body_bytes"))
		}
	}
	h.stop()
	summary := h.stderr.String()
	logSummary(t, summary)
	if n := summaryCounter(summary, "openssl", "truncated_records"); n < 2 {
		t.Errorf("truncated_records = %d in the summary, want at least 2 (one per side):\n%s", n, summary)
	}
	if n := summaryCounter(summary, "openssl", "truncated_bytes"); n < 2*(65536-4*4096) {
		t.Errorf("truncated_bytes = %d in the summary:\n%s", n, summary)
	}
}

// copyProgram copies the program name (found in PATH) to a new directory
// as newName, so that its processes have the comm newName.
func copyProgram(t *testing.T, name, newName string) string {
	t.Helper()
	src, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), newName)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOpenSSLOverloadTruncates: while the plugin is stopped (SIGSTOP), no
// one reads its 2 MiB ring buffer, which curl fetching a 1 MiB file from
// nginx fills past half: the probes then copy only the first 4 KiB of each
// call (counted in truncated_overload_records) and the ring never
// overflows. Once the plugin runs again, every request and response of
// both sides is decoded, the big response marked truncated with its real
// length. curl and nginx run as copies named e2etrunc, the module's comm
// filter, so that other TLS traffic on the machine stays out of the ring.
func TestOpenSSLOverloadTruncates(t *testing.T) {
	requireOpenSSL(t, "nginx")
	const comm = "e2etrunc"
	marker := uniq("overload")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	root := tlspeer.WebRoot(t, map[string]string{marker + ".bin": big, marker + ".txt": "small"})
	port := startNginxBin(t, copyProgram(t, "nginx", comm), root, "")
	curl := copyProgram(t, "curl", comm)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, fmt.Sprintf("comm = %q\n  buffer_kib = 2048", comm), ""))

	plugins := h.pluginPIDs("openssl")
	if len(plugins) != 1 {
		t.Fatalf("plugin processes %v", plugins)
	}
	if err := syscall.Kill(plugins[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(plugins[0], syscall.SIGCONT)
		}
	}()
	base := fmt.Sprintf("https://127.0.0.1:%d/%s", port, marker)
	paths := []string{".bin", ".txt", ".txt", ".txt"}
	args := []string{curl, "-sk", "--http1.1"}
	for _, p := range paths {
		args = append(args, base+p, "-o", "/dev/null")
	}
	runCommand(t, args...)
	if err := syscall.Kill(plugins[0], syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false

	mine := func(r record) bool {
		return r.str("module") == "openssl" && r.str("comm") == comm && strings.HasPrefix(r.str("kind"), "http_")
	}
	deadline := time.Now().Add(30 * time.Second)
	var msgs []record
	for time.Now().Before(deadline) {
		msgs = msgs[:0]
		for _, r := range readJSON(t, events) {
			if mine(r) {
				msgs = append(msgs, r)
			}
		}
		if len(msgs) >= 4*len(paths) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.stop()
	// Each side's messages, in order: request, response, request...
	sides := map[float64][]record{}
	for _, r := range msgs {
		sides[r.connID()] = append(sides[r.connID()], r)
	}
	if len(sides) != 2 {
		t.Fatalf("%d connections among the messages decoded, want curl's and nginx's: %v", len(sides), msgs)
	}
	for _, side := range sides {
		var reqs, resps []record
		for _, r := range side {
			if r.str("kind") == "http_request" {
				reqs = append(reqs, r)
			} else {
				resps = append(resps, r)
			}
		}
		if len(reqs) != len(paths) || len(resps) != len(paths) {
			t.Errorf("%d requests and %d responses decoded on one side, want %d each", len(reqs), len(resps), len(paths))
			continue
		}
		for i, p := range paths {
			if reqs[i].field("path") != "/"+marker+p || resps[i].field("status") != "200" {
				t.Errorf("message %d: request %v, response %v", i, reqs[i]["fields"], resps[i]["fields"])
			}
		}
		head, _, _ := strings.Cut(resps[0].payload(), "\r\n\r\n")
		if resps[0].field("truncated") != "true" || resps[0].field("payload_bytes") != strconv.Itoa(len(head)+4+len(big)) {
			t.Errorf("the 1 MiB response is not marked truncated with its length: %v", resps[0]["fields"])
		}
		for _, r := range resps[1:] {
			if r.field("truncated") != "" || r.field("body_bytes") != "5" {
				t.Errorf("a small response: %v", r["fields"])
			}
		}
	}
	summary := h.stderr.String()
	logSummary(t, summary)
	if n := summaryCounter(summary, "openssl", "truncated_overload_records"); n <= 0 {
		t.Errorf("truncated_overload_records = %d: the ring never filled past half?\n%s", n, summary)
	}
	if n := summaryCounter(summary, "openssl", "ringbuf_reserve_failed"); n > 0 {
		t.Errorf("records lost although they were cut:\n%s", summary)
	}
}

// TestOpenSSLPluginBoostsHost: a host in the background (the default
// priority) that does not run at all (SIGSTOP, as a host at SCHED_IDLE on
// CPUs kept busy) cannot notice it is behind. The plugin, whose ring
// buffer fills past three quarters (2 MiB ring; curl fetching 32 MiB
// from nginx, cut to 4 KiB per call as the host is behind), returns the
// host's threads to normal priority itself, and says so: info_host_boosts
// in the exit summary, the governor's boosted_by_plugins.
func TestOpenSSLPluginBoostsHost(t *testing.T) {
	requireOpenSSL(t, "nginx")
	const comm = "e2eboost"
	marker := uniq("boost")
	root := tlspeer.WebRoot(t, map[string]string{marker + ".bin": strings.Repeat("0123456789abcdef", 2<<20)}) // 32 MiB
	port := startNginxBin(t, copyProgram(t, "nginx", comm), root, "")
	curl := copyProgram(t, "curl", comm)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, fmt.Sprintf("comm = %q\n  buffer_kib = 2048", comm), ""))
	pid := h.cmd.Process.Pid
	policy := func() uint32 {
		t.Helper()
		attr, err := unix.SchedGetAttr(pid, 0)
		if err != nil {
			t.Fatal(err)
		}
		return attr.Policy
	}
	if p := policy(); p != unix.SCHED_IDLE {
		t.Fatalf("the host's main thread has policy %d before the traffic, want SCHED_IDLE: the test proves nothing", p)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	url := fmt.Sprintf("https://127.0.0.1:%d/%s.bin", port, marker)
	boosted := false
	for i := 0; i < 4 && !boosted; i++ {
		runCommand(t, curl, "-sk", "--http1.1", url, "-o", "/dev/null")
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && !boosted; time.Sleep(20 * time.Millisecond) {
			boosted = policy() == unix.SCHED_NORMAL
		}
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if !boosted {
		t.Fatal("the plugin did not return the stopped host to normal priority")
	}
	// The governor counts the boost when the host reads its next batch,
	// before it is stopped.
	waitRecord(t, events, 10*time.Second, "a response of "+comm, func(r record) bool {
		return r.str("comm") == comm && r.str("kind") == "http_response"
	})
	h.stop()
	summary := h.stderr.String()
	logSummary(t, summary)
	if n := summaryCounter(summary, "openssl", "info_host_boosts"); n < 1 {
		t.Errorf("info_host_boosts = %d, want at least 1:\n%s", n, summary)
	}
	if !strings.Contains(summary, "boosted_by_plugins=") || strings.Contains(summary, "boosted_by_plugins=0") {
		t.Errorf("the host did not count a boost by its plugin:\n%s", summary)
	}
}
