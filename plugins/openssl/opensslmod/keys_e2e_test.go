package opensslmod

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// curlKeyed runs curl with args, its own key log in SSLKEYLOGFILE=keyFile,
// returning its pid once it exited.
func curlKeyed(t *testing.T, keyFile string, args ...string) int {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sSk", "--max-time", "20"}, args...)...)
	cmd.Env = append(os.Environ(), "SSLKEYLOGFILE="+keyFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, out.Bytes())
	}
	return cmd.Process.Pid
}

// clientRandoms returns the client randoms of the tls_keys events of pid.
func clientRandoms(evs []*sdk.Event, pid int) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == KindTLSKeys && int(ev.PID) == pid {
			cr, _ := ev.Field(FieldClientRandom)
			out = append(out, cr)
		}
	}
	return out
}

// webFiles adds the files of the acceptance tests to the server's root.
func webFiles(t *testing.T, srv *server) {
	t.Helper()
	for _, f := range []string{"tls13.txt", "tls12.txt"} {
		if err := os.WriteFile(filepath.Join(srv.dir, f), []byte(f+" "+srv.marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeylogCurl is the keylog acceptance test: while the module runs,
// tshark records loopback on its own, curl fetches from openssl s_server
// once over TLS 1.3 and once limited to TLS 1.2; the key file the module
// wrote lets tshark decrypt both requests, holds one set of lines per
// session, and has for curl's sessions exactly the lines curl's own
// SSLKEYLOGFILE has.
func TestKeylogCurl(t *testing.T) {
	requirePrivileges(t, "tshark")
	srv := startServer(t)
	webFiles(t, srv)
	dir := t.TempDir()
	keys, curlKeys := filepath.Join(dir, "keys.log"), filepath.Join(dir, "curl-keys.log")
	capture := wireshark.Start(t, srv.port)
	h := startHarness(t, sdk.Settings{Config: sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys}})

	pid13 := curlKeyed(t, curlKeys, "--tlsv1.3", srv.url("tls13.txt"))
	pid12 := curlKeyed(t, curlKeys, "--tls-max", "1.2", srv.url("tls12.txt"))
	for _, pid := range []int{pid13, pid12} {
		h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	}
	recorded := capture.Stop(t)
	h.Stop(t)

	// Without keys tshark sees no request; with ours, both.
	if got := wireshark.Fields(t, recorded, nil, "http.request", "http.request.uri"); len(got) != 0 {
		t.Fatalf("tshark decoded %q without keys", got)
	}
	got := wireshark.Fields(t, recorded, []string{"-o", "tls.keylog_file:" + keys}, "http.request", "http.request.uri")
	if !slices.Equal(got, []string{"/tls13.txt", "/tls12.txt"}) {
		t.Errorf("tshark with the module's key file decoded requests %q, want /tls13.txt and /tls12.txt", got)
	}

	ours, theirs := wireshark.KeyLogLines(t, keys), wireshark.KeyLogLines(t, curlKeys)
	for cr, lines := range ours {
		labels := map[string]int{}
		for _, l := range lines {
			labels[strings.Fields(l)[0]]++
		}
		_, tls12 := labels["CLIENT_RANDOM"]
		if (tls12 && len(lines) != 1) || (!tls12 && len(lines) != 5) || len(labels) != len(lines) {
			t.Errorf("session %s has %d lines, want 1 (TLS 1.2) or 5 (TLS 1.3), each once: %q", cr, len(lines), lines)
		}
	}
	for pid, want := range map[int]int{pid13: 5, pid12: 1} {
		crs := clientRandoms(h.Events(), pid)
		if len(crs) != 1 {
			t.Fatalf("curl %d: %d tls_keys events, want 1: %v", pid, len(crs), crs)
		}
		a, b := slices.Clone(ours[crs[0]]), slices.Clone(theirs[crs[0]])
		sort.Strings(a)
		sort.Strings(b)
		if len(a) != want || !slices.Equal(a, b) {
			t.Errorf("curl %d's session %s: the module wrote\n%s\ncurl wrote\n%s", pid, crs[0], strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
	if st, err := os.Stat(keys); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v", err, st.Mode())
	}
	losses := h.Losses()
	for _, c := range []string{CounterKeysUnverified, CounterKeysUnreadable, CounterKeysUnsupported, CounterKeysUnwritten, ebpfbase.CounterReserveFailed} {
		if v, ok := losses[c]; !ok || v != 0 {
			t.Errorf("counter %s = %d (reported %v): %v", c, v, ok, losses)
		}
	}
}

// TestPcapCurl is the pcap acceptance test: the pcapng file the module
// wrote, read by tshark with no other input, shows both requests
// decrypted, and a packet comment names curl's pid.
func TestPcapCurl(t *testing.T) {
	requirePrivileges(t, "tshark")
	if !haveTCX() {
		t.Log("the kernel lacks tcx: the clsact path only")
	}
	t.Run("tcx or clsact", testPcapCurl)
	t.Run("clsact", func(t *testing.T) {
		old := haveTCX
		defer func() { haveTCX = old }()
		haveTCX = func() bool { return false }
		testPcapCurl(t)
	})
}

func testPcapCurl(t *testing.T) {
	srv := startServer(t)
	webFiles(t, srv)
	out := filepath.Join(t.TempDir(), "out.pcapng")
	h := startHarness(t, sdk.Settings{Config: sdk.Config{AttrMode: ModePcap, AttrPcapFile: out, AttrIfname: "lo", AttrPort: int64(srv.port)}})
	pid13 := curl(t, "--tlsv1.3", srv.url("tls13.txt"))
	pid12 := curl(t, "--tls-max", "1.2", srv.url("tls12.txt"))
	for _, pid := range []int{pid13, pid12} {
		h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	}
	h.Stop(t)
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pcapng file: %v", err)
	}
	got := wireshark.Fields(t, out, nil, "http.request", "http.request.uri", "frame.comment")
	want := []string{fmt.Sprintf("/tls13.txt\tpid=%d comm=curl", pid13), fmt.Sprintf("/tls12.txt\tpid=%d comm=curl", pid12)}
	if !slices.Equal(got, want) {
		t.Errorf("tshark read the requests %q, want %q", got, want)
	}
	// The port filter kept other traffic out.
	for _, l := range wireshark.Fields(t, out, nil, "tcp", "tcp.srcport", "tcp.dstport") {
		if !strings.Contains("\t"+l+"\t", fmt.Sprintf("\t%d\t", srv.port)) {
			t.Errorf("a packet not of port %d: %s", srv.port, l)
			break
		}
	}
	losses := h.Losses()
	for _, c := range []string{CounterPcapLost, CounterPcapTruncated, CounterPcapUnwritten, CounterPcapEarly, ebpfbase.CounterReserveFailed, CounterKeysUnverified} {
		if v, ok := losses[c]; !ok || v != 0 {
			t.Errorf("counter %s = %d (reported %v): %v", c, v, ok, losses)
		}
	}
}

// TestPcapLargePackets: a 4 MiB upload over loopback, whose GSO packets
// reach 64 KiB, arrives whole in the pcapng file and decrypted: tshark
// reassembles the HTTP body.
func TestPcapLargePackets(t *testing.T) {
	requirePrivileges(t, "tshark", "python3")
	py := startPythonServer(t)
	out := filepath.Join(t.TempDir(), "out.pcapng")
	h := startHarness(t, sdk.Settings{Common: sdk.Common{BufferKiB: 16 << 10},
		Config: sdk.Config{AttrMode: ModePcap, AttrPcapFile: out, AttrIfname: "lo", AttrPort: int64(py.port)}})
	body := filepath.Join(t.TempDir(), "body.bin")
	if err := os.WriteFile(body, bytes.Repeat([]byte("0123456789abcdef"), 1<<18), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unthrottled, loopback moves it in a few milliseconds and the reader
	// sometimes falls behind (the loss is counted, but this test wants
	// every packet); 64 MB/s still makes packets of the largest size.
	pid := curl(t, "-H", "Expect:", "--limit-rate", "64M", "--data-binary", "@"+body, py.url("upload"))
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	h.Stop(t)
	lens := wireshark.Fields(t, out, nil, "frame.len > 17408", "frame.len")
	got := wireshark.Fields(t, out, nil, "http.request", "http.request.uri", "http.content_length", "frame.comment")
	want := fmt.Sprintf("/upload\t%d\tpid=%d comm=curl", 4<<20, pid)
	if !slices.Equal(got, []string{want}) {
		t.Errorf("tshark read %q, want %q", got, want)
	}
	if len(lens) == 0 {
		t.Log("no packet of the largest size classes: GSO did not make any on this machine")
	}
	for _, l := range wireshark.Fields(t, out, nil, "frame.cap_len < frame.len", "frame.number") {
		t.Errorf("frame %s captured short", l)
	}
	losses := h.Losses()
	for _, c := range []string{CounterPcapLost, ebpfbase.CounterReserveFailed} {
		if losses[c] != 0 {
			t.Errorf("counter %s = %d", c, losses[c])
		}
	}
	t.Logf("%d packets longer than 17 KiB; losses %v", len(lens), losses)
}

// TestKeysUnknownVersionOverGRPC: the refusal of an unknown OpenSSL
// reaches the host as a diagnostic, at validate time.
func TestKeysUnknownVersionOverGRPC(t *testing.T) {
	fake := fakeOpenSSL(t, fakeVersion(t, "9.9.9"))
	h := harness.New(t, ebpfbase.New(New()))
	ds := h.Configure(t, sdk.Settings{CheckOnly: true, Config: sdk.Config{AttrMode: ModeKeylog, AttrLibssl: fake,
		AttrKeylogFile: filepath.Join(t.TempDir(), "k.log")}})
	if !ds.HasErrors() || ds[0].Attribute != AttrLibssl || !strings.Contains(ds[0].Detail, `"OpenSSL 9.9.9`) {
		t.Errorf("diagnostics %v", ds)
	}
}

// TestPcapLossesCounted: with a 64 KiB ring buffer, the packets of a 4 MiB
// upload cannot all be queued; what was lost is counted, and what was
// written still opens in tshark.
func TestPcapLossesCounted(t *testing.T) {
	requirePrivileges(t, "tshark", "python3")
	py := startPythonServer(t)
	out := filepath.Join(t.TempDir(), "out.pcapng")
	h := startHarness(t, sdk.Settings{Common: sdk.Common{BufferKiB: 64},
		Config: sdk.Config{AttrMode: ModePcap, AttrPcapFile: out, AttrIfname: "lo", AttrPort: int64(py.port)}})
	body := filepath.Join(t.TempDir(), "body.bin")
	if err := os.WriteFile(body, bytes.Repeat([]byte("0123456789abcdef"), 1<<18), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unthrottled, loopback moves it in a few milliseconds and the reader
	// sometimes falls behind (the loss is counted, but this test wants
	// every packet); 64 MB/s still makes packets of the largest size.
	pid := curl(t, "-H", "Expect:", "--limit-rate", "64M", "--data-binary", "@"+body, py.url("upload"))
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	h.Stop(t)
	losses := h.Losses()
	if losses[CounterPcapLost] == 0 {
		t.Errorf("no loss counted with a 64 KiB ring buffer: %v", losses)
	}
	if n := len(wireshark.Fields(t, out, nil, "tcp", "frame.number")); n == 0 {
		t.Error("no packet written")
	}
	t.Logf("losses %v", losses)
}
