package opensslmod

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// TestPcapKeyedAtFreePrecedesPackets: a session keyed at SSL_free (a
// client that never calls SSL_do_handshake, ending at once) has its
// Decryption Secrets Block before its packets in the pcapng file: tshark
// decrypts its request in one pass (no -2). Only the client is probed
// (pid filter): the server's packets say their sender is unknown and name
// their receiver, after the second they wait for the sender's record.
func TestPcapKeyedAtFreePrecedesPackets(t *testing.T) {
	requirePrivileges(t, "tshark", debianPython)
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "out.pcapng")
	client := lazyClient(t, srv.port, "hello.txt", "once", "wait")
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Process.Kill(); _ = client.Wait() })
	pid := client.Process.Pid
	h := startHarness(t, sdk.Settings{
		Common: sdk.Common{PID: uint32(pid)},
		Config: sdk.Config{AttrMode: ModePcap, AttrPcapFile: out, AttrIfname: "lo", AttrPort: int64(srv.port), AttrLibssl: systemLibssl},
	})
	waitFallbackDetached(t, h)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	h.Stop(t)

	got := wireshark.Fields(t, out, nil, "http.request", "http.request.uri", "frame.comment")
	if want := fmt.Sprintf("/hello.txt\tpid=%d comm=", pid); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("tshark (one pass) read the requests %q, want one %q...", got, want)
	}
	sent, received := fmt.Sprintf("pid=%d comm=", pid), fmt.Sprintf("sender unknown; receiver pid=%d comm=", pid)
	all := wireshark.Fields(t, out, nil, "tcp", "tcp.srcport", "frame.comment")
	for _, l := range all {
		port, comment, _ := strings.Cut(l, "\t")
		want := sent
		if port == strconv.Itoa(srv.port) {
			want = received
		}
		if !strings.HasPrefix(comment, want) {
			t.Errorf("a packet from port %s is commented %q, want %q...", port, comment, want)
		}
	}
	if len(all) < 10 {
		t.Errorf("%d packets in the file: %q", len(all), all)
	}
	losses := h.Losses()
	if losses[CounterKeysAtFree] < 1 {
		t.Errorf("counter %s = %d, want the session keyed at SSL_free: %v", CounterKeysAtFree, losses[CounterKeysAtFree], losses)
	}
	if losses[CounterPcapEarly] != 0 {
		t.Errorf("counter %s = %d", CounterPcapEarly, losses[CounterPcapEarly])
	}
}
