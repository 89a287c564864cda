package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// otlpConfig runs the openssl module for curl with a JSON file output and
// the otlp block otlp.
func otlpConfig(t *testing.T, events, otlp string, extra ...string) string {
	return writeConfig(t, fmt.Sprintf(`plugin_dir = %q
%s
output "file" {
  path   = %q
  format = "json"
}
output "otlp" {
%s
}
module "openssl" {
  comm = "curl"
}
`, builtPlugins(t), strings.Join(extra, "\n"), events, otlp))
}

// curlMarked fetches path from the s_server on port with a header
// carrying marker, and returns curl's pid.
func curlMarked(t *testing.T, port int, path, marker string) int {
	t.Helper()
	pid, out := runCommand(t, "curl", "-sk", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-E2E: "+marker,
		fmt.Sprintf("https://127.0.0.1:%d/%s", port, path))
	if out != "200" {
		t.Fatalf("curl got %q", out)
	}
	return pid
}

// outputSummary returns the written and dropped counts the exit summary
// gives for the output named name.
func outputSummary(t *testing.T, stderr, name string) (written, dropped int) {
	t.Helper()
	re := regexp.MustCompile(`output ` + regexp.QuoteMeta(name) + `: (\d+) events written, (\d+) dropped`)
	m := re.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line for output %s in:\n%s", name, stderr)
	}
	written, _ = strconv.Atoi(m[1])
	dropped, _ = strconv.Atoi(m[2])
	return written, dropped
}

// requests returns, by marker, how many http_request records carry it.
func requestsByMarker(recs []otlpRecord) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		if r.attrs["ecaphost.kind"] == "http_request" {
			n[r.attrs["http.request.header.x-e2e"]]++
		}
	}
	return n
}

// TestOTLPToCollector sends what the openssl module captures of curl to a
// real Collector over gRPC with TLS (a test CA), kills the Collector for
// 5 s while curl goes on, and checks that every request arrives once with
// its attributes, and that the file output beside it has them all.
func TestOTLPToCollector(t *testing.T) {
	requireOpenSSL(t)
	ca := newTestCA(t, "ecaphost test CA")
	col := startCollector(t, "grpc", ca)
	root := tlspeer.WebRoot(t, map[string]string{"page.txt": "hello from s_server\n", "big.txt": strings.Repeat("0123456789abcdef", 5<<16)}) // 5 MiB
	port := tlspeer.SServer(t, root)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", tlspeer.FreePort(t))
	h := startHost(t, otlpConfig(t, events, fmt.Sprintf(`  endpoint = %q
  ca_file  = %q
  headers  = { "x-tenant" = "ops" }`, col.endpoint(), ca.caFile), fmt.Sprintf("metrics {\n  listen = %q\n}", metricsAddr)))
	otlpName := "otlp " + col.endpoint()

	var markers []string
	pids := map[string]int{}
	request := func() {
		m := uniq("otlp")
		markers = append(markers, m)
		pids[m] = curlMarked(t, port, "page.txt", m)
	}
	for range 5 {
		request()
	}
	// A response larger than the Collector takes in one message (4 MiB):
	// its record carries the first 2 MiB and the whole length.
	bigPID := curlMarked(t, port, "big.txt", uniq("big"))
	if !harness.Poll(20*time.Second, func() bool { return len(requestsByMarker(col.records())) >= 5 }) {
		t.Fatalf("the Collector has %d of 5 requests", len(requestsByMarker(col.records())))
	}
	// The Collector writes its file before it answers the export, and
	// the output counts on the answer: wait for the count.
	var first scraped
	if !harness.Poll(20*time.Second, func() bool {
		first = scrapeMetrics(t, metricsAddr)
		return first.value(t, "ecaphost_output_events_total", "output", otlpName) >= 5
	}) {
		t.Errorf("ecaphost_output_events_total{output=%q} = %v after 5 requests reached the Collector", otlpName, first.value(t, "ecaphost_output_events_total", "output", otlpName))
	}
	if got := first.value(t, "ecaphost_module_state", "module", "openssl", "state", "running"); got != 1 {
		t.Errorf("ecaphost_module_state{state=running} = %v", got)
	}
	if got := first.value(t, "ecaphost_module_probes", "module", "openssl"); got <= 0 {
		t.Errorf("ecaphost_module_probes = %v", got)
	}
	for _, m := range first["ecaphost_lost_events_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "counter" && strings.HasPrefix(l.GetValue(), "info_") {
				t.Errorf("a counter of work done among the losses: %v", m)
			}
		}
	}

	// The Collector goes away for 5 s; capture goes on.
	col.kill()
	down := time.Now()
	for range 3 {
		request()
	}
	time.Sleep(5*time.Second - time.Since(down))
	col.start()
	if !harness.Poll(60*time.Second, func() bool { return len(requestsByMarker(col.records())) >= len(markers) }) {
		t.Logf("the Collector has %d of %d requests after it came back", len(requestsByMarker(col.records())), len(markers))
	}
	moving := [][]string{{"ecaphost_events_total", "module", "openssl"}, {"ecaphost_output_events_total", "output", otlpName}, {"ecaphost_output_bytes_total", "output", otlpName}}
	var second scraped
	harness.Poll(20*time.Second, func() bool {
		second = scrapeMetrics(t, metricsAddr)
		for _, c := range moving {
			if second.value(t, c[0], c[1:]...) <= first.value(t, c[0], c[1:]...) {
				return false
			}
		}
		return true
	})
	for _, c := range moving {
		if a, b := first.value(t, c[0], c[1:]...), second.value(t, c[0], c[1:]...); b <= a {
			t.Errorf("%s%v did not move with 3 more requests: %v then %v", c[0], c[1:], a, b)
		}
	}
	if second.value(t, "process_cpu_seconds_total") <= 0 {
		t.Errorf("process_cpu_seconds_total is 0")
	}
	h.stop()
	col.stop()

	recs := col.records()
	byMarker := requestsByMarker(recs)
	written, dropped := outputSummary(t, h.stderr.String(), "otlp "+col.endpoint())
	if written != len(recs) {
		t.Errorf("the summary says %d events written to the Collector, its files hold %d", written, len(recs))
	}
	fileRecs := readJSON(t, events)
	if written+dropped != len(fileRecs) {
		t.Errorf("otlp: %d written + %d dropped, the file output has %d events", written, dropped, len(fileRecs))
	}
	missing := 0
	for _, m := range markers {
		inFile := 0
		for _, r := range fileRecs {
			if r.str("kind") == "http_request" && r.field("header.X-E2e") == m {
				inFile++
			}
		}
		if inFile != 1 {
			t.Errorf("request %s is %d times in the file output, want once", m, inFile)
		}
		switch byMarker[m] {
		case 1:
		case 0:
			missing++
		default:
			t.Errorf("request %s reached the Collector %d times", m, byMarker[m])
		}
	}
	if missing > dropped {
		t.Errorf("%d requests never reached the Collector, but only %d events are counted as dropped", missing, dropped)
	}
	if dropped != 0 {
		t.Errorf("%d events dropped with a 64 MiB queue and a Collector away for 5 s (the exporter retries for a minute)", dropped)
	}

	// One request's record, attribute by attribute.
	var req *otlpRecord
	for i := range recs {
		if recs[i].attrs["ecaphost.kind"] == "http_request" && recs[i].attrs["http.request.header.x-e2e"] == markers[0] {
			req = &recs[i]
		}
	}
	if req == nil {
		t.Fatalf("the first request is not in the Collector's files")
	}
	want := map[string]string{
		"ecaphost.module":          "openssl",
		"process.pid":              strconv.Itoa(pids[markers[0]]),
		"process.executable.name":  "curl",
		"user.id":                  "0",
		"http.request.method":      "GET",
		"url.path":                 "/page.txt",
		"network.peer.address":     "127.0.0.1",
		"network.peer.port":        strconv.Itoa(port),
		"network.local.address":    "127.0.0.1",
		"network.protocol.name":    "http",
		"network.protocol.version": "1.1",
		"ecaphost.direction":       "egress",
	}
	for k, v := range want {
		if req.attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q (record %v)", k, req.attrs[k], v, req.attrs)
		}
	}
	for _, k := range []string{"thread.id", "network.local.port", "ecaphost.connection.id", "ecaphost.cgroup.id"} {
		if req.attrs[k] == "" {
			t.Errorf("attribute %s missing (record %v)", k, req.attrs)
		}
	}
	if !strings.Contains(req.body, "X-E2E: "+markers[0]) {
		t.Errorf("body %q does not hold the request", req.body)
	}
	if req.resource["service.name"] != "ecaphost" || req.resource["host.name"] == "" || req.resource["service.version"] == "" {
		t.Errorf("resource %v", req.resource)
	}
	sawStatus := false
	for _, r := range recs {
		if r.attrs["ecaphost.kind"] == "http_response" && r.attrs["http.response.status_code"] == "200" {
			sawStatus = true
		}
	}
	if !sawStatus {
		t.Errorf("no http_response record with http.response.status_code 200")
	}
	sawBig := false
	for _, r := range recs {
		if r.attrs["ecaphost.kind"] == "http_response" && r.attrs["process.pid"] == strconv.Itoa(bigPID) {
			sawBig = true
			if whole, _ := strconv.Atoi(r.attrs["ecaphost.payload_bytes"]); whole < 5<<20 || len(r.body) != 2<<20 || !strings.Contains(r.body, "0123456789abcdef") {
				t.Errorf("the 5 MiB response's record: payload_bytes %q, body %d bytes", r.attrs["ecaphost.payload_bytes"], len(r.body))
			}
		}
	}
	if !sawBig {
		t.Errorf("the 5 MiB response did not reach the Collector")
	}
}

// TestOTLPSmallQueueCountsDrops: with queue_mib = 1 and the Collector
// away, large responses overflow the queue; what never reaches the
// Collector is exactly what the summary counts as dropped, and a
// host.notice says when delivery resumed.
func TestOTLPSmallQueueCountsDrops(t *testing.T) {
	requireOpenSSL(t)
	col := startCollector(t, "http", nil)
	big := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB
	root := tlspeer.WebRoot(t, map[string]string{"big.txt": big, "small.txt": "small\n"})
	port := tlspeer.SServer(t, root)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, otlpConfig(t, events, fmt.Sprintf(`  endpoint  = %q
  protocol  = "http/protobuf"
  insecure  = true
  queue_mib = 1`, col.endpoint())))

	curlMarked(t, port, "small.txt", uniq("before"))
	if !harness.Poll(20*time.Second, func() bool { return len(requestsByMarker(col.records())) >= 1 }) {
		t.Fatalf("the first request did not reach the Collector")
	}
	col.kill()
	for range 4 {
		curlMarked(t, port, "big.txt", uniq("big"))
	}
	h.waitLog("OTLP queue is full", 20*time.Second)
	col.start()
	curlMarked(t, port, "small.txt", uniq("after"))
	h.waitLog("delivery resumed", 60*time.Second)
	h.stop()
	col.stop()

	recs := col.records()
	written, dropped := outputSummary(t, h.stderr.String(), "otlp "+col.endpoint())
	fileRecs := readJSON(t, events)
	if written != len(recs) {
		t.Errorf("the summary says %d events written to the Collector, its files hold %d", written, len(recs))
	}
	if dropped == 0 {
		t.Errorf("nothing dropped: 4 responses of 640 KiB fit a 1 MiB queue?")
	}
	if written+dropped != len(fileRecs) {
		t.Errorf("otlp: %d written + %d dropped, the file output has %d events", written, dropped, len(fileRecs))
	}
	notice := false
	for _, r := range recs {
		if r.attrs["ecaphost.kind"] == "host.notice" && r.attrs["ecaphost.lost"] != "" {
			notice = true
			if lost, _ := strconv.Atoi(r.attrs["ecaphost.lost"]); lost == 0 || lost > dropped {
				t.Errorf("the notice says %d lost, the summary %d dropped", lost, dropped)
			}
		}
	}
	if !notice {
		t.Errorf("no host.notice of delivery resumed reached the Collector")
	}
}

// TestOTLPWrongCA: a Collector whose certificate the configured CA did
// not sign is an error at start that says so.
func TestOTLPWrongCA(t *testing.T) {
	requireOpenSSL(t)
	col := startCollector(t, "grpc", newTestCA(t, "the Collector's CA"))
	other := newTestCA(t, "another CA")
	cfg := otlpConfig(t, filepath.Join(t.TempDir(), "events.jsonl"), fmt.Sprintf(`  endpoint = %q
  ca_file  = %q`, col.endpoint(), other.caFile))
	code, out := ecaphost(t, 60*time.Second, "run", cfg)
	if code == 0 || !strings.Contains(out, "certificate signed by unknown authority") || !strings.Contains(out, "capture.hcl:") {
		t.Fatalf("exit %d, want an error naming the output and the unknown authority:\n%s", code, out)
	}
}
