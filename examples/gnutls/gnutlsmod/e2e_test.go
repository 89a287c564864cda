package gnutlsmod

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// requirePrivileges skips the test when the machine cannot run it, or
// fails it when ECAPHOST_E2E=1 says it must (gnutls-cli: apt-get install
// gnutls-bin).
func requirePrivileges(t *testing.T) {
	t.Helper()
	harness.RequirePrivileges(t, systemLibgnutls, "gnutls-cli", "openssl")
}

// server is `openssl s_server -WWW` serving file.txt with a marker.
type server struct {
	port   int
	marker string
}

func startServer(t *testing.T) *server {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s := &server{marker: "gnutls-marker-" + hex.EncodeToString(b)}
	s.port = tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"file.txt": s.marker + "\n"}))
	return s
}

// request is what gnutls-cli sends, written on its stdin.
const request = "GET /file.txt HTTP/1.0\r\n\r\n"

// client is a gnutls-cli connected to the server, waiting for its stdin.
type client struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *harness.Buffer
	done  chan error
}

// connect starts gnutls-cli and waits for its handshake to complete.
func connect(t *testing.T, s *server) *client {
	t.Helper()
	c := &client{out: &harness.Buffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command("gnutls-cli", "--insecure", "-p", strconv.Itoa(s.port), "127.0.0.1")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.done })
	if !harness.Poll(10*time.Second, func() bool { return strings.Contains(c.out.String(), "Simple Client Mode") }) {
		t.Fatalf("gnutls-cli did not complete its handshake:\n%s", c.out.String())
	}
	return c
}

// fetch sends the request and waits for gnutls-cli to print the response
// and exit.
func (c *client) fetch(t *testing.T, s *server) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, request); err != nil {
		t.Fatal(err)
	}
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil || !strings.Contains(c.out.String(), s.marker) {
			t.Fatalf("gnutls-cli: %v:\n%s", err, c.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("gnutls-cli did not finish:\n%s", c.out.String())
	}
}

func (c *client) pid() int { return c.cmd.Process.Pid }

// checkCapture checks that pid's request and the response were captured,
// whole, on one connection to the server, by the right functions.
func checkCapture(t *testing.T, h *harness.Host, s *server, pid int) {
	t.Helper()
	loopback := netip.MustParseAddr("127.0.0.1")
	req := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == pid && ev.Conn.Direction == sdk.DirectionEgress && bytes.HasPrefix(ev.Payload, []byte("GET /file.txt"))
	})
	var resp []byte
	harness.Poll(10*time.Second, func() bool {
		resp = harness.Stream(h.Events(), pid, 0, sdk.DirectionIngress)
		return bytes.Contains(resp, []byte(s.marker))
	})
	evs := h.Events()
	if got := harness.Stream(evs, pid, 0, sdk.DirectionEgress); string(got) != request {
		t.Errorf("egress %q, want the request %q", got, request)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 ok\r\n")) || !bytes.Contains(resp, []byte(s.marker)) {
		t.Fatalf("ingress %q, want the response with %s; events: %s", resp, s.marker, harness.Describe(evs))
	}
	if req.Kind != tlsrecord.KindTLSData || req.Route != sdk.RouteStream || req.Module != Name || req.Comm != "gnutls-cli" {
		t.Errorf("request event: %s", harness.Describe([]*sdk.Event{req}))
	}
	if req.Conn.Remote != netip.AddrPortFrom(loopback, uint16(s.port)) || req.Conn.Local.Addr() != loopback || req.Conn.ID == 0 {
		t.Errorf("connection %+v, want 127.0.0.1:* -> 127.0.0.1:%d", req.Conn, s.port)
	}
	for _, ev := range evs {
		if int(ev.PID) != pid {
			continue
		}
		want := "gnutls_record_send"
		if ev.Conn.Direction == sdk.DirectionIngress {
			want = "gnutls_record_recv"
		}
		lib, _ := ev.Field(tlsrecord.FieldLib)
		fn, _ := ev.Field(tlsrecord.FieldFn)
		if lib != LibGnuTLS || fn != want || ev.Conn.ID != req.Conn.ID || ev.Conn.Remote != req.Conn.Remote {
			t.Errorf("event unlike the request's %+v: %s", req.Conn, harness.Describe([]*sdk.Event{ev}))
		}
		for _, f := range []string{tlsrecord.FieldGap, tlsrecord.FieldTruncated} {
			if _, ok := ev.Field(f); ok {
				t.Errorf("%s marked: %s", f, harness.Describe([]*sdk.Event{ev}))
			}
		}
		t.Logf("captured:%s", harness.Describe([]*sdk.Event{ev}))
	}
}

// TestCaptureGnutlsCli drives the module as the host does (in-process
// gRPC): gnutls-cli, with the libgnutls the module found itself, fetches a
// file from openssl s_server -WWW.
func TestCaptureGnutlsCli(t *testing.T) {
	requirePrivileges(t)
	s := startServer(t)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{Comm: "gnutls-cli"}})
	c := connect(t, s)
	c.fetch(t, s)
	checkCapture(t, h, s, c.pid())
	h.Stop(t)
	losses := h.Losses()
	for _, name := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors, tlsrecord.CounterTruncated, tlsrecord.CounterFault, tlsrecord.CounterTooDeep} {
		v, ok := losses[name]
		if !ok {
			t.Errorf("counter %s did not reach the host: %v", name, losses)
		}
		if v != 0 {
			t.Errorf("counter %s = %d", name, v)
		}
	}
}

// TestPIDFilter: with the pid filter on a gnutls-cli already connected,
// the library is found in its mappings, and its request and the response
// are captured although its session began before the probes.
func TestPIDFilter(t *testing.T) {
	requirePrivileges(t)
	// s_server serves one connection at a time: one server each.
	s, s2 := startServer(t), startServer(t)
	c := connect(t, s)
	other := connect(t, s2)
	m := New()
	h := harness.New(t, ebpfbase.New(m))
	if ds := h.Configure(t, sdk.Settings{Common: sdk.Common{PID: uint32(c.pid())}}); ds.HasErrors() {
		t.Fatal(ds)
	}
	if got := tlsrecord.Paths(m.targets); len(got) != 1 || !sameFile(got[0], systemLibgnutls) {
		t.Errorf("probing %v, want the %s gnutls-cli maps", got, systemLibgnutls)
	}
	h.Start(t)
	other.fetch(t, s2)
	c.fetch(t, s)
	checkCapture(t, h, s, c.pid())
	h.Stop(t)
	for _, ev := range h.Events() {
		if int(ev.PID) != c.pid() {
			t.Errorf("event of pid %d with the filter on %d: %s", ev.PID, c.pid(), harness.Describe([]*sdk.Event{ev}))
		}
	}
}

// TestAttachErrorNamesSymbolAndBinary: a probe that cannot attach fails
// Start with an error naming the symbol and the binary.
func TestAttachErrorNamesSymbolAndBinary(t *testing.T) {
	requirePrivileges(t)
	m := New()
	base := ebpfbase.New(m)
	if err := base.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: sdk.Config{AttrLibgnutls: systemLibgnutls}}, nil); err != nil {
		t.Fatal(err)
	}
	// As if Init had accepted a library that lost gnutls_record_recv since.
	m.targets = append(m.targets, target{Path: "/bin/ls", Symbols: []string{symRecv}})
	err := base.Start()
	defer base.Close()
	var ae *ebpfbase.AttachError
	if !errors.As(err, &ae) || ae.Symbol != symRecv || ae.Binary != "/bin/ls" {
		t.Fatalf("Start: %v, want an *ebpfbase.AttachError for %s in /bin/ls", err, symRecv)
	}
	if !strings.Contains(err.Error(), symRecv+" in /bin/ls") {
		t.Errorf("error %q does not name the symbol and binary", err)
	}
}
