package opensslmod

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// systemLibssl is the libssl the tests expect curl and openssl to use.
const systemLibssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3"

// requirePrivileges skips the test when the machine cannot run it, or
// fails it when ECAPHOST_E2E=1 says it must.
func requirePrivileges(t *testing.T, programs ...string) {
	t.Helper()
	harness.RequirePrivileges(t, append([]string{systemLibssl, "curl", "openssl"}, programs...)...)
}

// server is an HTTPS server of the tests: `openssl s_server -WWW` serving
// dir (startServer), or testdata/https_server.py (startPythonServer).
type server struct {
	cmd    *exec.Cmd // the python server
	dir    string
	port   int
	marker string // content of dir/hello.txt
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{marker: "marker-" + rand.Text()}
	s.dir = tlspeer.WebRoot(t, map[string]string{"hello.txt": s.marker + "\n"})
	s.port = tlspeer.SServer(t, s.dir)
	return s
}

// startPythonServer starts testdata/https_server.py, an HTTPS server whose
// TLS is OpenSSL driven through SSL_read_ex and SSL_write_ex.
func startPythonServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	cert, key := tlspeer.SelfSigned(t, dir)
	script, err := filepath.Abs("testdata/https_server.py")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{dir: dir, marker: "hello from python"}
	s.cmd = exec.Command("python3", script, cert, key)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = os.Stderr
	// Its own process group: python3 may be a launcher (pyenv) whose
	// interpreter is a child, which killing the launcher would leave behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL); _ = s.cmd.Wait() })
	line := make([]byte, 16)
	n, err := out.Read(line)
	if err != nil {
		t.Fatalf("reading the port of the python server: %v", err)
	}
	if s.port, err = strconv.Atoi(strings.TrimSpace(string(line[:n]))); err != nil {
		t.Fatalf("python server printed %q, not its port", line[:n])
	}
	return s
}

func (s *server) url(file string) string {
	return fmt.Sprintf("https://127.0.0.1:%d/%s", s.port, file)
}

// curl runs curl with args, returning its pid once it exited.
func curl(t *testing.T, args ...string) int {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sSk", "--max-time", "20"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, out.Bytes())
	}
	return cmd.Process.Pid
}

func startHarness(t *testing.T, s sdk.Settings) *harness.Host {
	t.Helper()
	h := harness.New(t, ebpfbase.New(New()))
	if ds := h.Configure(t, s); ds.HasErrors() {
		t.Fatal(ds)
	}
	h.Start(t)
	t.Cleanup(func() {
		if h.StreamErr() == nil {
			_ = h.Client.Stop(t.Context())
		}
	})
	return h
}

// TestCaptureCurl drives the module as the host does (in-process gRPC):
// curl, with the system libssl, fetches a file from openssl s_server, then
// posts 1 MiB to a Python HTTPS server. Both ends of the POST are
// captured (curl: SSL_write, Python: SSL_read_ex), with their connections.
func TestCaptureCurl(t *testing.T) {
	requirePrivileges(t, "python3")
	srv := startServer(t)
	py := startPythonServer(t)
	h := startHarness(t, sdk.Settings{})
	loopback := netip.MustParseAddr("127.0.0.1")

	t.Run("GET", func(t *testing.T) {
		pid := curl(t, srv.url("hello.txt"))
		req := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
			return int(ev.PID) == pid && ev.Conn.Direction == sdk.DirectionEgress && bytes.HasPrefix(ev.Payload, []byte("GET /hello.txt HTTP/1.1\r\n"))
		})
		if req.Kind != KindTLSData || req.Route != sdk.RouteStream || req.Module != Name || req.Comm != "curl" || int(req.TID) != pid {
			t.Errorf("request event %s", harness.Describe([]*sdk.Event{req}))
		}
		if lib, _ := req.Field(FieldLib); lib != LibOpenSSL {
			t.Errorf("lib %q", lib)
		}
		if fn, _ := req.Field(FieldFn); fn != "SSL_write" {
			t.Errorf("fn %q, want SSL_write", fn)
		}
		if req.Conn.Remote != netip.AddrPortFrom(loopback, uint16(srv.port)) || req.Conn.Local.Addr() != loopback || req.Conn.Local.Port() == 0 || req.Conn.ID == 0 {
			t.Errorf("connection %+v, want 127.0.0.1:* -> 127.0.0.1:%d", req.Conn, srv.port)
		}
		var resp []byte
		ok := harness.Poll(10*time.Second, func() bool {
			resp = harness.Stream(h.Events(), pid, req.Conn.ID, sdk.DirectionIngress)
			return bytes.Contains(resp, []byte(srv.marker))
		})
		if !ok || !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 ok\r\n")) {
			t.Fatalf("curl's ingress on connection %x: %q; events: %s", req.Conn.ID, resp, harness.Describe(h.Events()))
		}
		for _, ev := range h.Events() {
			if int(ev.PID) != pid {
				continue
			}
			if ev.Conn.ID != req.Conn.ID || ev.Conn.Local != req.Conn.Local || ev.Conn.Remote != req.Conn.Remote {
				t.Errorf("curl's event on another connection than its request's %+v: %s", req.Conn, harness.Describe([]*sdk.Event{ev}))
			}
			if fn, _ := ev.Field(FieldFn); ev.Conn.Direction == sdk.DirectionIngress && fn != "SSL_read" {
				t.Errorf("ingress by %s, want SSL_read", fn)
			}
		}
	})

	t.Run("POST 1 MiB", func(t *testing.T) {
		body := make([]byte, 1<<20)
		if _, err := rand.Read(body); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "body.bin")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		pid := curl(t, "-H", "Expect:", "--data-binary", "@"+file, py.url("upload"))
		reply := fmt.Sprintf("%d %x\n", len(body), sum)
		// The server's reply says it read the whole body; wait for curl to
		// have read it, then check what both ends wrote and read.
		var got []byte
		if !harness.Poll(20*time.Second, func() bool {
			got = harness.Stream(h.Events(), pid, 0, sdk.DirectionIngress)
			return bytes.HasSuffix(got, []byte(reply))
		}) {
			t.Fatalf("curl's ingress %q, want the reply %q; losses %v", got, reply, h.Losses())
		}
		evs := h.Events()
		checkBody := func(who string, pid int, dir sdk.Direction, start string, wantFn string) {
			t.Helper()
			var conn uint64
			for _, ev := range evs {
				if int(ev.PID) == pid && ev.Conn.Direction == dir && bytes.HasPrefix(ev.Payload, []byte(start)) {
					conn = ev.Conn.ID
				}
			}
			data := harness.Stream(evs, pid, conn, dir)
			i := bytes.Index(data, []byte("\r\n\r\n"))
			if conn == 0 || i < 0 {
				t.Errorf("%s: no request %q captured: %s", who, start, harness.Describe(evs))
				return
			}
			b := data[i+4:]
			if len(b) != len(body) || sha256.Sum256(b) != sum {
				t.Errorf("%s: captured body of %d bytes, sha256 %x; sent %d bytes, sha256 %x", who, len(b), sha256.Sum256(b), len(body), sum)
			}
			var n int
			for _, ev := range evs {
				if int(ev.PID) != pid || ev.Conn.ID != conn || ev.Conn.Direction != dir {
					continue
				}
				n++
				if len(ev.Payload) > chunkMax {
					t.Errorf("%s: event of %d bytes, more than a chunk", who, len(ev.Payload))
				}
				if fn, _ := ev.Field(FieldFn); fn != wantFn {
					t.Errorf("%s: fn %q, want %s", who, fn, wantFn)
				}
				for _, f := range []string{FieldGap, FieldTruncated} {
					if _, ok := ev.Field(f); ok {
						t.Errorf("%s: %s marked on %s", who, f, harness.Describe([]*sdk.Event{ev}))
					}
				}
			}
			t.Logf("%s: 1 MiB body in %d events, sha256 %x", who, n, sum)
		}
		checkBody("curl", pid, sdk.DirectionEgress, "POST /upload HTTP/1.1\r\n", "SSL_write")
		checkBody("python server", py.pid(), sdk.DirectionIngress, "POST /upload HTTP/1.1\r\n", "SSL_read_ex")
		for _, ev := range evs {
			if int(ev.PID) == py.pid() && ev.Conn.Local != netip.AddrPortFrom(loopback, uint16(py.port)) {
				t.Errorf("python server's event with local address %v, want 127.0.0.1:%d", ev.Conn.Local, py.port)
				break
			}
		}
	})

	h.Stop(t)
	losses := h.Losses()
	for _, c := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors, CounterTruncated, CounterFault, CounterTooDeep} {
		if _, ok := losses[c]; !ok {
			t.Errorf("counter %s did not reach the host: %v", c, losses)
		}
	}
	if losses[ebpfbase.CounterDecodeErrors] != 0 || losses[ebpfbase.CounterReserveFailed] != 0 {
		t.Errorf("losses: %v", losses)
	}
	t.Logf("losses %v", losses)
}

// TestTruncatedCall sends 17 MiB in one SSL_write_ex (Python's sendall):
// the first 16 MiB arrive, in order, the last event says truncated, and
// the call is counted.
func TestTruncatedCall(t *testing.T) {
	requirePrivileges(t, "python3")
	py := startPythonServer(t)
	// Room for the whole 16 MiB of the call, sent in one burst.
	h := startHarness(t, sdk.Settings{Common: sdk.Common{BufferKiB: 64 << 10}})
	const size = 17 << 20
	script, err := filepath.Abs("testdata/big_post.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", script, strconv.Itoa(py.port), strconv.Itoa(size))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), strconv.Itoa(size)+" ") {
		t.Fatalf("big_post.py: %v: %s", err, out)
	}
	pid := cmd.Process.Pid
	var last *sdk.Event
	h.WaitFor(t, 20*time.Second, func(ev *sdk.Event) bool {
		if _, ok := ev.Field(FieldTruncated); ok && int(ev.PID) == pid {
			last = ev
			return true
		}
		return false
	})
	var call []byte
	for _, ev := range h.Events() {
		if int(ev.PID) == pid && ev.Conn.ID == last.Conn.ID && ev.Conn.Direction == sdk.DirectionEgress {
			if fn, _ := ev.Field(FieldFn); fn == "SSL_write_ex" {
				call = append(call, ev.Payload...)
			}
		}
	}
	// The call may hold the request head before the body.
	body := bytes.Repeat(func() []byte {
		b := make([]byte, 251)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), size/251+1)
	if i := bytes.Index(call, []byte("\r\n\r\n")); i >= 0 && bytes.HasPrefix(call, []byte("POST")) {
		call = call[i+4:]
	}
	if len(call) < 16<<20-4096 || len(call) > 16<<20 || !bytes.Equal(call, body[:len(call)]) {
		t.Errorf("captured %d bytes of the call (want the first 16 MiB, in order)", len(call))
	}
	h.Stop(t)
	if n := h.Losses()[CounterTruncated]; n < 1 {
		t.Errorf("%s = %d, want at least 1: %v", CounterTruncated, n, h.Losses())
	}
	t.Logf("17 MiB call: %d bytes captured, losses %v", len(call), h.Losses())
}

// TestWriteRetriesCapturedOnce: writes are captured at their entry, and a
// non-blocking writer whose socket is full calls SSL_write_ex again for the
// same bytes (WANT_WRITE). The captured stream holds every byte once, in
// order, on both ends.
func TestWriteRetriesCapturedOnce(t *testing.T) {
	requirePrivileges(t, "python3")
	// Room for both ends of the transfer in one burst.
	h := startHarness(t, sdk.Settings{Common: sdk.Common{BufferKiB: 64 << 10}})
	const size = 16 << 20
	cert, key := tlspeer.SelfSigned(t, t.TempDir())
	script, err := filepath.Abs("testdata/retry_write.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", script, cert, key, strconv.Itoa(size))
	out, err := cmd.Output()
	var retries, received int
	var sha string
	if _, serr := fmt.Sscan(string(out), &retries, &received, &sha); err != nil || serr != nil {
		t.Fatalf("retry_write.py: %v %v: %s", err, serr, out)
	}
	data := bytes.Repeat(func() []byte {
		b := make([]byte, 251)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), size/251+1)[:size]
	sum := sha256.Sum256(data)
	if received != size || sha != hex.EncodeToString(sum[:]) {
		t.Fatalf("the script's server read %d bytes, sha256 %s; sent %d, sha256 %x", received, sha, size, sum)
	}
	if retries == 0 {
		t.Fatal("no write was called again: the test did not fill the socket")
	}
	pid := cmd.Process.Pid
	var egress, ingress []byte
	if !harness.Poll(20*time.Second, func() bool {
		evs := h.Events()
		egress, ingress = harness.Stream(evs, pid, 0, sdk.DirectionEgress), harness.Stream(evs, pid, 0, sdk.DirectionIngress)
		return len(egress) >= size && len(ingress) >= size
	}) {
		t.Fatalf("captured %d bytes written and %d read of %d; losses %v", len(egress), len(ingress), size, h.Losses())
	}
	for _, c := range []struct {
		name string
		got  []byte
	}{{"written", egress}, {"read", ingress}} {
		if !bytes.Equal(c.got, data) {
			i := 0
			for i < len(c.got) && i < len(data) && c.got[i] == data[i] {
				i++
			}
			t.Errorf("%s: captured %d bytes, sent %d; they differ from byte %d", c.name, len(c.got), size, i)
		}
	}
	h.Stop(t)
	t.Logf("%d MiB in 64 KiB writes, %d called again; losses %v", size>>20, retries, h.Losses())
}

// TestPIDFilter sets the pid filter to a Python HTTPS server: its side of
// curl's request is captured, nothing of curl is. The libssl to probe is
// found in the server's mappings.
func TestPIDFilter(t *testing.T) {
	requirePrivileges(t, "python3")
	py := startPythonServer(t)
	m := New()
	h := harness.New(t, ebpfbase.New(m))
	if ds := h.Configure(t, sdk.Settings{Common: sdk.Common{PID: uint32(py.pid())}}); ds.HasErrors() {
		t.Fatal(ds)
	}
	h.Start(t)
	pid := curl(t, py.url("filtered"))
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == py.pid() && ev.Conn.Direction == sdk.DirectionIngress && bytes.HasPrefix(ev.Payload, []byte("GET /filtered HTTP/1.1"))
	})
	// The server's reply is captured too; then nothing else can come.
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == py.pid() && ev.Conn.Direction == sdk.DirectionEgress && bytes.Contains(ev.Payload, []byte(py.marker))
	})
	h.Stop(t)
	for _, ev := range h.Events() {
		if int(ev.PID) != py.pid() {
			t.Errorf("event of pid %d (curl is %d) with the filter on %d: %s", ev.PID, pid, py.pid(), harness.Describe([]*sdk.Event{ev}))
		}
	}
	if got := tlsrecord.Paths(m.targets); len(got) != 1 || !sameFile(got[0], systemLibssl) {
		t.Errorf("probed %v, want the server's %s", got, systemLibssl)
	}
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// TestLostRecordsAreCountedAndMarked: with a 64 KiB ring buffer a 1 MiB
// POST cannot be queued whole. What the kernel could not queue shows in
// ringbuf_reserve_failed, and curl's egress events after a loss carry
// gap=true.
func TestLostRecordsAreCountedAndMarked(t *testing.T) {
	requirePrivileges(t, "python3")
	py := startPythonServer(t)
	h := startHarness(t, sdk.Settings{Common: sdk.Common{Comm: "curl", BufferKiB: 64}})
	file := filepath.Join(t.TempDir(), "body.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two POSTs on one connection: the second one's records come after the
	// loss of most of the first's.
	pid := curl(t, "-H", "Expect:", "--data-binary", "@"+file, py.url("lossy1"), py.url("lossy2"))
	// The reply is read after the body: once the second is in, every
	// record of both bodies was either delivered or counted.
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == pid && ev.Conn.Direction == sdk.DirectionIngress && bytes.Count(harness.Stream(h.Events(), pid, 0, sdk.DirectionIngress), []byte("HTTP/1.1 200")) == 2
	})
	h.Stop(t)
	losses := h.Losses()
	delivered, gaps := 0, 0
	for _, ev := range h.Events() {
		if int(ev.PID) != pid || ev.Conn.Direction != sdk.DirectionEgress {
			continue
		}
		delivered += len(ev.Payload)
		if _, ok := ev.Field(FieldGap); ok {
			gaps++
		}
	}
	t.Logf("64 KiB ring, two 1 MiB POSTs: %d bytes delivered, %d events after a gap, losses %v", delivered, gaps, losses)
	if losses[ebpfbase.CounterReserveFailed] == 0 || delivered >= 2<<20 {
		t.Errorf("no record lost with a 64 KiB ring: %d bytes delivered, losses %v", delivered, losses)
	}
	if gaps == 0 {
		t.Error("records were lost but no event says gap")
	}
}

// TestAttachErrorNamesSymbolAndBinary: a probe that cannot attach fails
// Start with an error naming the symbol and the binary.
func TestAttachErrorNamesSymbolAndBinary(t *testing.T) {
	requirePrivileges(t)
	m := New()
	base := ebpfbase.New(m)
	if err := base.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: sdk.Config{AttrLibssl: systemLibssl}}, nil); err != nil {
		t.Fatal(err)
	}
	// As if Init had accepted a binary that lost SSL_read since.
	m.targets = append(m.targets, target{Path: "/bin/ls", Symbols: []string{symRead}})
	err := base.Start()
	defer base.Close()
	var ae *ebpfbase.AttachError
	if !errors.As(err, &ae) || ae.Symbol != symRead || ae.Binary != "/bin/ls" {
		t.Fatalf("Start: %v, want an *ebpfbase.AttachError for SSL_read in /bin/ls", err)
	}
	if !strings.Contains(err.Error(), "SSL_read in /bin/ls") {
		t.Errorf("error %q does not name the symbol and binary", err)
	}
}
