package nsprmod

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// systemNSPR is the libnspr4 the NSS tools of the test machine use.
const systemNSPR = "/usr/lib/x86_64-linux-gnu/libnspr4.so"

// requirePrivileges skips the test when the machine cannot run it, or
// fails it when ECAPHOST_E2E=1 says it must.
func requirePrivileges(t *testing.T, programs ...string) {
	t.Helper()
	harness.RequirePrivileges(t, append([]string{systemNSPR, "openssl", "tstclnt"}, programs...)...)
}

// sServer is `openssl s_server -WWW` serving a directory holding page.txt,
// whose content is marker.
type sServer struct {
	port   int
	marker string
}

func startSServer(t *testing.T) *sServer {
	t.Helper()
	s := &sServer{marker: "marker-" + rand.Text()}
	s.port = tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"page.txt": s.marker + "\n"}))
	return s
}

// tstclnt sends request to 127.0.0.1:port with NSS's tstclnt (reading it
// from a file) and returns its pid and output once it exited.
func tstclnt(t *testing.T, port int, request string) (int, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "request")
	if err := os.WriteFile(file, []byte(request), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tstclnt", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-o", "-D", "-A", file)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tstclnt: %v: %s", err, stderr.Bytes())
	}
	return cmd.Process.Pid, out.String()
}

func field(ev *sdk.Event, k string) string { v, _ := ev.Field(k); return v }

// TestCaptureTstclnt drives the module as the host does (in-process gRPC):
// NSS's tstclnt fetches a page from openssl s_server. Its request (PR_Send)
// and the response (PR_Recv) are captured on the SSL layer with the
// connection's addresses; the request file it reads and the response it
// writes to stdout are not (ssl_only).
func TestCaptureTstclnt(t *testing.T) {
	requirePrivileges(t)
	srv := startSServer(t)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{Comm: "tstclnt"}})
	loopback := netip.MustParseAddr("127.0.0.1")
	marker := "X-Marker: " + rand.Text()
	pid, out := tstclnt(t, srv.port, "GET /page.txt HTTP/1.0\r\n"+marker+"\r\n\r\n")
	if !strings.Contains(out, srv.marker) {
		t.Fatalf("tstclnt did not fetch the page: %q", out)
	}
	req := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == pid && ev.Conn.Direction == sdk.DirectionEgress && bytes.Contains(ev.Payload, []byte(marker))
	})
	if req.Kind != KindTLSData || req.Route != sdk.RouteStream || req.Module != Name || req.Comm != "tstclnt" ||
		field(req, FieldLib) != LibNSPR || field(req, FieldLayer) != LayerSSL || !bytes.HasPrefix(req.Payload, []byte("GET /page.txt HTTP/1.0\r\n")) {
		t.Errorf("request event %s", harness.Describe([]*sdk.Event{req}))
	}
	if fn := field(req, FieldFn); fn != "PR_Send" && fn != "PR_Write" {
		t.Errorf("request written by %s", fn)
	}
	if req.Conn.Remote != netip.AddrPortFrom(loopback, uint16(srv.port)) || req.Conn.Local.Addr() != loopback || req.Conn.ID == 0 {
		t.Errorf("connection %+v, want 127.0.0.1:* -> 127.0.0.1:%d", req.Conn, srv.port)
	}
	var resp []byte
	if !harness.Poll(10*time.Second, func() bool {
		resp = harness.Stream(h.Events(), pid, req.Conn.ID, sdk.DirectionIngress)
		return bytes.Contains(resp, []byte(srv.marker))
	}) || !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 ok\r\n")) {
		t.Fatalf("tstclnt's ingress on connection %x: %q; events: %s", req.Conn.ID, resp, harness.Describe(h.Events()))
	}
	h.Stop(t)
	for _, ev := range h.Events() {
		if field(ev, FieldLayer) != LayerSSL || ev.Conn.ID != req.Conn.ID {
			t.Errorf("with ssl_only, an event off the SSL connection: %s", harness.Describe([]*sdk.Event{ev}))
		}
	}
	losses := h.Losses()
	for _, c := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors, CounterTruncated, CounterFault, CounterTooDeep} {
		if _, ok := losses[c]; !ok {
			t.Errorf("counter %s did not reach the host: %v", c, losses)
		}
	}
	if losses[ebpfbase.CounterDecodeErrors] != 0 || losses[ebpfbase.CounterReserveFailed] != 0 {
		t.Errorf("losses: %v", losses)
	}
}

// TestEveryLayer turns ssl_only off: tstclnt's read of its request file
// and its write of the response to stdout show as layer file, beside the
// SSL connection.
func TestEveryLayer(t *testing.T) {
	requirePrivileges(t)
	srv := startSServer(t)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{Comm: "tstclnt"}, Config: sdk.Config{AttrSSLOnly: false}})
	marker := "X-Marker: " + rand.Text()
	pid, _ := tstclnt(t, srv.port, "GET /page.txt HTTP/1.0\r\n"+marker+"\r\n\r\n")
	byLayer := func(layer string, dir sdk.Direction, want string) *sdk.Event {
		t.Helper()
		var found *sdk.Event
		if !harness.Poll(10*time.Second, func() bool {
			for _, ev := range h.Events() {
				if int(ev.PID) == pid && field(ev, FieldLayer) == layer && ev.Conn.Direction == dir && bytes.Contains(ev.Payload, []byte(want)) {
					found = ev
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no %s %s event holding %q: %s", layer, dir, want, harness.Describe(h.Events()))
		}
		return found
	}
	file := byLayer(LayerFile, sdk.DirectionIngress, marker)
	if field(file, FieldFn) != "PR_Read" || file.Conn.Remote.IsValid() {
		t.Errorf("the request file's read: %s", harness.Describe([]*sdk.Event{file}))
	}
	byLayer(LayerSSL, sdk.DirectionEgress, marker)
	byLayer(LayerSSL, sdk.DirectionIngress, srv.marker)
	stdout := byLayer(LayerFile, sdk.DirectionEgress, srv.marker)
	if field(stdout, FieldFn) != "PR_Write" {
		t.Errorf("the write to stdout: %s", harness.Describe([]*sdk.Event{stdout}))
	}
}

// TestSelfserv: NSS's selfserv as the server, a Go TLS client: the request
// selfserv reads (PR_Read) and the response it writes (PR_Writev) are
// captured, with the server's address as the local one.
func TestSelfserv(t *testing.T) {
	requirePrivileges(t, "selfserv", "certutil", "curl")
	srvPID, port := tlspeer.Selfserv(t)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{PID: uint32(srvPID)}})
	path := "/selfserv-" + rand.Text()
	out, err := exec.Command("curl", "-sSk", "--max-time", "10", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d%s", port, path)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GET "+path) {
		t.Fatalf("curl: %v: %s", err, out)
	}
	req := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return ev.Conn.Direction == sdk.DirectionIngress && bytes.HasPrefix(ev.Payload, []byte("GET "+path+" HTTP/1.1\r\n"))
	})
	if int(req.PID) != srvPID || req.Comm != "selfserv" || field(req, FieldFn) != "PR_Read" || field(req, FieldLayer) != LayerSSL ||
		req.Conn.Local != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)) {
		t.Errorf("request event %s", harness.Describe([]*sdk.Event{req}))
	}
	var resp []byte
	if !harness.Poll(10*time.Second, func() bool {
		resp = harness.Stream(h.Events(), srvPID, req.Conn.ID, sdk.DirectionEgress)
		return bytes.Contains(resp, []byte("GET "+path))
	}) || !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 OK\r\n")) {
		t.Fatalf("selfserv's egress: %q; events: %s", resp, harness.Describe(h.Events()))
	}
	for _, ev := range h.Events() {
		if ev.Conn.ID == req.Conn.ID && ev.Conn.Direction == sdk.DirectionEgress && field(ev, FieldFn) != "PR_Writev" {
			t.Errorf("response written by %s, want PR_Writev", field(ev, FieldFn))
		}
	}
}

// TestPIDFilter sets the pid filter to selfserv and runs tstclnt against
// it: selfserv's side is captured, nothing of tstclnt is. The library to
// probe is found in selfserv's mappings.
func TestPIDFilter(t *testing.T) {
	requirePrivileges(t, "selfserv", "certutil")
	srvPID, port := tlspeer.Selfserv(t)
	m := New()
	h := harness.Start(t, ebpfbase.New(m), sdk.Settings{Common: sdk.Common{PID: uint32(srvPID)}})
	marker := "/filtered-" + rand.Text()
	pid, _ := tstclnt(t, port, "GET "+marker+" HTTP/1.0\r\n\r\n")
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return ev.Conn.Direction == sdk.DirectionIngress && bytes.HasPrefix(ev.Payload, []byte("GET "+marker))
	})
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return ev.Conn.Direction == sdk.DirectionEgress && bytes.Contains(ev.Payload, []byte("GET "+marker))
	})
	h.Stop(t)
	for _, ev := range h.Events() {
		if int(ev.PID) != srvPID {
			t.Errorf("event of pid %d (tstclnt is %d) with the filter on %d: %s", ev.PID, pid, srvPID, harness.Describe([]*sdk.Event{ev}))
		}
	}
	if got := tlsrecord.Paths(m.targets); len(got) != 1 || !sameFile(got[0], systemNSPR) {
		t.Errorf("probed %v, want selfserv's %s", got, systemNSPR)
	}
}

// TestLayerOfRunningProcess: a tstclnt that set up NSS before the module
// started (its SSL layer's identity is unknown to the probes) still has
// its connection reported as ssl: a layered descriptor over TCP.
func TestLayerOfRunningProcess(t *testing.T) {
	requirePrivileges(t)
	srv := startSServer(t)
	// tstclnt connects, then waits for its request on stdin.
	cmd := exec.Command("tstclnt", "-h", "127.0.0.1", "-p", strconv.Itoa(srv.port), "-o", "-D")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !harness.Poll(10*time.Second, func() bool { return mapsFile(cmd.Process.Pid, "libssl3.so") }) {
		t.Fatal("tstclnt did not load NSS")
	}
	time.Sleep(200 * time.Millisecond) // let it register its layer and connect
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{PID: uint32(cmd.Process.Pid)}})
	marker := "X-Late: " + rand.Text()
	fmt.Fprintf(stdin, "GET /page.txt HTTP/1.0\r\n%s\r\n\r\n", marker)
	req := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return ev.Conn.Direction == sdk.DirectionEgress && bytes.Contains(ev.Payload, []byte(marker))
	})
	if field(req, FieldLayer) != LayerSSL {
		t.Errorf("request of a process started before the module: %s", harness.Describe([]*sdk.Event{req}))
	}
	stdin.Close()
}

func mapsFile(pid int, base string) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	return bytes.Contains(b, []byte("/"+base))
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
