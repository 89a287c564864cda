package opensslmod

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// debianPython is Debian's interpreter, whose ssl module links the system
// libssl (the python3 first on PATH may be another build).
const debianPython = "/usr/bin/python3"

// lazyClient is testdata/lazy_client.py: Python's ssl with
// do_handshake_on_connect=False, whose first SSL_write_ex drives the
// handshake. It calls SSL_new, SSL_set_fd, SSL_write_ex, SSL_read_ex and
// SSL_free, never SSL_do_handshake, SSL_connect or SSL_accept (counted
// with bpftrace uprobes on the system libssl, 2026-12-04).
func lazyClient(t *testing.T, port int, path string, args ...string) *exec.Cmd {
	t.Helper()
	script, err := filepath.Abs("testdata/lazy_client.py")
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command(debianPython, append([]string{script, strconv.Itoa(port), path}, args...)...)
}

// waitFallbackDetached waits until the module lists no fallback probe:
// the window after start is over.
func waitFallbackDetached(t *testing.T, h *harness.Host) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		probes, err := h.Client.Probes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(probes, func(p sdk.ProbeInfo) bool { return strings.HasPrefix(p.Program, progFallback) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fallback probes still attached 10 s after start: %v", probes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDecrypted checks that tshark decodes no request of the capture
// without keys, and with the key log exactly want.
func checkDecrypted(t *testing.T, recorded, keys string, want ...string) {
	t.Helper()
	// Without its ClientHello tshark decrypts nothing, whatever the keys:
	// say so rather than blame the keys.
	if hellos := wireshark.Fields(t, recorded, nil, "tls.handshake.type == 1", "frame.number"); len(hellos) == 0 {
		t.Fatalf("the capture %s holds no ClientHello: the recording missed the handshake", recorded)
	}
	if got := wireshark.Fields(t, recorded, nil, "http.request", "http.request.uri"); len(got) != 0 {
		t.Fatalf("tshark decoded %q without keys", got)
	}
	got := wireshark.Fields(t, recorded, []string{"-o", "tls.keylog_file:" + keys}, "http.request", "http.request.uri")
	if !slices.Equal(got, want) {
		t.Errorf("tshark with the module's key file decoded requests %q, want %q; key log lines by client random: %q; TLS records in the capture: %d",
			got, want, wireshark.KeyLogLines(t, keys), len(wireshark.Fields(t, recorded, nil, "tls.record", "frame.number")))
	}
}

// checkNoKeyLosses checks that no key counter counted a loss.
func checkNoKeyLosses(t *testing.T, losses map[string]uint64) {
	t.Helper()
	for _, c := range []string{CounterKeysUnverified, CounterKeysUnreadable, CounterKeysUnsupported, CounterKeysUnwritten, ebpfbase.CounterReserveFailed} {
		if v, ok := losses[c]; !ok || v != 0 {
			t.Errorf("counter %s = %d (reported %v): %v", c, v, ok, losses)
		}
	}
}

// TestKeylogClientDrivingHandshakeFromWrite: a client that never calls
// SSL_do_handshake gets its keys, filtered by its pid so that the server's
// own handshake probe cannot supply them, and they decrypt an independent
// capture. It connects once the window after start is over. A session
// that ends at once is keyed at SSL_free; one that lives on (its response
// read 1.5 s after its request) is keyed at its SSL_read_ex by the
// fallback probes, attached because its SSL_new was not followed by
// SSL_do_handshake.
func TestKeylogClientDrivingHandshakeFromWrite(t *testing.T) {
	requirePrivileges(t, "tshark", debianPython)
	for _, tc := range []struct {
		name, mode string
		counter    string // the path that keyed it
	}{
		{"short session, keyed at SSL_free", "once", CounterKeysAtFree},
		{"session living on, keyed by the fallback", "slow", CounterKeysLate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t)
			keys := filepath.Join(t.TempDir(), "keys.log")
			capture := wireshark.Start(t, srv.port)
			client := lazyClient(t, srv.port, "hello.txt", tc.mode, "wait")
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
				Config: sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: systemLibssl},
			})
			waitFallbackDetached(t, h)
			if _, err := stdin.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
			if err := client.Wait(); err != nil {
				t.Fatalf("client: %v", err)
			}
			h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
			recorded := capture.Stop(t)
			h.Stop(t)

			checkDecrypted(t, recorded, keys, "/hello.txt")
			losses := h.Losses()
			if losses[tc.counter] < 1 {
				t.Errorf("counter %s = %d, want the session keyed that way: %v", tc.counter, losses[tc.counter], losses)
			}
			checkNoKeyLosses(t, losses)
		})
	}
}

// TestKeylogSessionOlderThanModule: a session that finished its handshake
// before the module started (filtered by its pid) is keyed at its next
// call by the fallback probes of the window after start, not at its end,
// and its key log decrypts the whole connection, the request made before
// the start included.
func TestKeylogSessionOlderThanModule(t *testing.T) {
	requirePrivileges(t, "tshark", debianPython)
	srv := startPythonServer(t)
	keys := filepath.Join(t.TempDir(), "keys.log")
	capture := wireshark.Start(t, srv.port)
	client := lazyClient(t, srv.port, "first", "twice")
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Process.Kill(); _ = client.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != "ready" {
	}
	pid := client.Process.Pid
	h := startHarness(t, sdk.Settings{
		Common: sdk.Common{PID: uint32(pid)},
		Config: sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys},
	})
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	for lines.Scan() {
	}
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	recorded := capture.Stop(t)
	h.Stop(t)

	checkDecrypted(t, recorded, keys, "/first", "/first")
	losses := h.Losses()
	if losses[CounterKeysLate] < 1 {
		t.Errorf("counter %s = %d, want the session keyed by the window after start: %v", CounterKeysLate, losses[CounterKeysLate], losses)
	}
	checkNoKeyLosses(t, losses)
}

// TestKeylogSessionOlderThanModuleInCopy: a session that finished its
// handshake before the module started, in a process whose libssl is a
// copy at another path (another inode: LD_LIBRARY_PATH, as a container's
// own libssl would be) that node-wide discovery finds, is keyed by the
// fallback probes of the window after start on that copy, not at its
// end, and its key log decrypts the whole connection. The capture keeps
// to a cgroup holding the client alone: the server's own keys (its
// libssl is the system's) are not captured, and the fallback's counter
// counts the client's session only.
func TestKeylogSessionOlderThanModuleInCopy(t *testing.T) {
	requirePrivileges(t, "tshark", debianPython)
	libDir := t.TempDir()
	data, err := os.ReadFile(systemLibssl)
	if err != nil {
		t.Fatal(err)
	}
	libCopy := filepath.Join(libDir, "libssl.so.3")
	if err := os.WriteFile(libCopy, data, 0o755); err != nil {
		t.Fatal(err)
	}
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "a cgroup2 hierarchy: %v", err)
	}
	cgDir, err := os.MkdirTemp(mount, "ecaphost-keys-copy-")
	if err != nil {
		harness.SkipOrFail(t, "creating a cgroup: %v", err)
	}
	t.Cleanup(func() { harness.Poll(5*time.Second, func() bool { return os.Remove(cgDir) == nil }) })
	id, level, err := cgroup.ID(mount, strings.TrimPrefix(cgDir, mount))
	if err != nil {
		t.Fatal(err)
	}

	srv := startPythonServer(t)
	keys := filepath.Join(t.TempDir(), "keys.log")
	capture := wireshark.Start(t, srv.port)
	lazy := lazyClient(t, srv.port, "first", "twice")
	client := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$1/cgroup.procs" && shift && exec "$@"`, "sh", cgDir}, lazy.Args...)...)
	client.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libDir)
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Process.Kill(); _ = client.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != "ready" {
	}
	pid := client.Process.Pid
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil || !strings.Contains(string(maps), libCopy) {
		t.Fatalf("the client does not map the copy %s (%v):\n%s", libCopy, err, maps)
	}
	h := startHarness(t, sdk.Settings{
		Common: sdk.Common{CgroupID: id, CgroupLevel: level, CgroupPath: cgDir},
		Config: sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys},
	})
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == KindTLSKeys && int(ev.PID) == pid })
	for lines.Scan() {
	}
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	recorded := capture.Stop(t)
	h.Stop(t)

	checkDecrypted(t, recorded, keys, "/first", "/first")
	losses := h.Losses()
	if losses[CounterKeysLate] != 1 || losses[CounterKeysAtFree] != 0 {
		t.Errorf("counters %s = %d and %s = %d, want the client's session keyed by the fallback on the copy (1, 0): %v",
			CounterKeysLate, losses[CounterKeysLate], CounterKeysAtFree, losses[CounterKeysAtFree], losses)
	}
	checkNoKeyLosses(t, losses)
}
