package gotlsmod

import (
	"bufio"
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// startServer runs `exe server args...` and returns its address and pid.
func startServer(t *testing.T, exe string, args ...string) (netip.AddrPort, int) {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"server"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, perr := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(line, "listening ")))
	if err != nil || perr != nil {
		t.Fatalf("%s server printed %q: %v %v", exe, line, err, perr)
	}
	return addr, cmd.Process.Pid
}

// runClient runs `exe client args... https://addr` and returns its pid.
func runClient(t *testing.T, exe string, addr netip.AddrPort, args ...string) int {
	t.Helper()
	cmd := exec.Command(exe, append(append([]string{"client"}, args...), "https://"+addr.String())...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s client: %v\n%s", exe, err, out)
	}
	return cmd.Process.Pid
}

// streamOf waits until the bytes of pid in direction dir on a connection
// to or from server contain want, and returns them.
func streamOf(t *testing.T, h *harness.Host, pid int, dir sdk.Direction, want string) []byte {
	t.Helper()
	var got []byte
	ok := harness.Poll(10*time.Second, func() bool {
		got = got[:0]
		for _, ev := range h.Events() {
			if int(ev.PID) == pid && ev.Conn.Direction == dir {
				got = append(got, ev.Payload...)
			}
		}
		return bytes.Contains(got, []byte(want))
	})
	if !ok {
		t.Fatalf("pid %d %v: no %q in %d bytes captured; events: %s", pid, dir, want, len(got), harness.Describe(h.Events()))
	}
	return got
}

// TestCaptureBinary probes a stripped executable named with binary: both
// ends of an HTTP/1.1 exchange, with the connection's addresses, and no
// loss.
func TestCaptureBinary(t *testing.T) {
	harness.RequirePrivileges(t)
	exe := build(t, localGo, "gopeer", "stripped")
	addr, spid := startServer(t, exe, "-h1")
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Config: sdk.Config{AttrBinary: exe}})
	cpid := runClient(t, exe, addr, "-h1", "-post", "102400")
	streamOf(t, h, cpid, sdk.DirectionEgress, "GET /hello HTTP/1.1\r\n")
	streamOf(t, h, spid, sdk.DirectionIngress, strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 2))
	streamOf(t, h, spid, sdk.DirectionEgress, "got 102400 bytes sha256")
	in := streamOf(t, h, cpid, sdk.DirectionIngress, "got 102400 bytes sha256")
	if !bytes.HasPrefix(in, []byte("HTTP/1.1 200 OK\r\n")) {
		t.Errorf("client's ingress starts %q", in[:min(len(in), 40)])
	}
	h.Stop(t)
	for _, ev := range h.Events() {
		if ev.Kind != KindTLSData || ev.Conn.ID == 0 || field(ev, FieldLib) != LibGo {
			t.Errorf("event %s", harness.Describe([]*sdk.Event{ev}))
			continue
		}
		server := int(ev.PID) == spid
		if (server && ev.Conn.Local != addr) || (!server && ev.Conn.Remote != addr) || !ev.Conn.Local.IsValid() || !ev.Conn.Remote.IsValid() {
			t.Errorf("pid %d (server %v): connection %v -> %v, server at %v", ev.PID, server, ev.Conn.Local, ev.Conn.Remote, addr)
		}
		if fn := field(ev, FieldFn); (fn == "Write") != (ev.Conn.Direction == sdk.DirectionEgress) {
			t.Errorf("%s in direction %v", fn, ev.Conn.Direction)
		}
	}
	for name, n := range h.Losses() {
		if n != 0 {
			t.Errorf("loss counter %s = %d", name, n)
		}
	}
	for _, c := range []string{ebpfbase.CounterReserveFailed, tlsrecord.CounterTooDeep, CounterReadsUntracked} {
		if _, ok := h.Losses()[c]; !ok {
			t.Errorf("counter %s did not reach the host: %v", c, h.Losses())
		}
	}
}

// TestCapturePID: with the pid filter, the process's executable is
// probed and only that process is captured (the client runs the same
// executable).
func TestCapturePID(t *testing.T) {
	harness.RequirePrivileges(t)
	exe := build(t, localGo, "gopeer", "pie")
	addr, spid := startServer(t, exe)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: sdk.Common{PID: uint32(spid)}})
	runClient(t, exe, addr)
	streamOf(t, h, spid, sdk.DirectionEgress, "hello from gopeer at /hello")
	h.Stop(t)
	for _, ev := range h.Events() {
		if int(ev.PID) != spid {
			t.Errorf("event of pid %d, filter %d", ev.PID, spid)
		}
	}
}
