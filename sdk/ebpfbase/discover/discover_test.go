package discover

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestExecThenRelease runs, after the Watcher started, a copy of sleep
// (an executable no process ran before): it must be offered within 500ms

// TestLateDlopen: a process that opens a library with dlopen a second
// after its exec (past the reads that follow an exec) has it offered
// soon after, the dynamic loader's report (a uprobe on _dl_debug_state)
// being the trigger.
func TestLateDlopen(t *testing.T) {
	harness.RequirePrivileges(t, "/usr/bin/python3")
	const zlib = "/usr/lib/x86_64-linux-gnu/libz.so.1"
	data, err := os.ReadFile(zlib)
	if err != nil {
		harness.SkipOrFail(t, "a library to open: %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libecaplate.so.1")
	if err := os.WriteFile(lib, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Candidate
	w, err := Start(Config{
		Library: func(base string) bool { return strings.HasPrefix(base, "libecaplate.so") },
		Probe: func(c Candidate) (func() error, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, c)
			return func() error { return nil }, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command("/usr/bin/python3", "-c",
		"import ctypes, sys, time; time.sleep(1); ctypes.CDLL(sys.argv[1]); print('opened', flush=True); time.sleep(30)", lib)
	out := &harness.Buffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !harness.Poll(5*time.Second, func() bool { return strings.Contains(out.String(), "opened") }) {
		t.Fatalf("python3 did not open %s", lib)
	}
	if !harness.Poll(2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 }) {
		t.Fatalf("the library opened late was not offered; stats %+v", w.Stats())
	}
	mu.Lock()
	c := got[0]
	mu.Unlock()
	st := w.Stats()
	t.Logf("dlopen to probed: %v (stats %+v)", st.LastLatency, st)
	if c.PID != uint32(cmd.Process.Pid) || c.Exe || !strings.HasSuffix(c.Name, "/libecaplate.so.1") {
		t.Errorf("candidate %+v, want the library mapped by pid %d", c, cmd.Process.Pid)
	}
	if st.Dlopens == 0 || st.Loaders == 0 {
		t.Errorf("stats %+v: want the loader hooked and its reports counted", st)
	}
	if st.LastLatency <= 0 || st.LastLatency > 200*time.Millisecond {
		t.Errorf("probed %v after the dlopen report, want within 200 ms", st.LastLatency)
	}
}

// of the exec, and released once it is gone.
func TestExecThenRelease(t *testing.T) {
	harness.RequirePrivileges(t, "sleep")
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ecap-discover-sleep")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Candidate
	released := 0
	w, err := Start(Config{
		Executables: true,
		Library:     func(base string) bool { return strings.HasPrefix(base, "libc.so") },
		Probe: func(c Candidate) (func() error, error) {
			if !strings.HasSuffix(c.Name, "/ecap-discover-sleep") {
				return nil, ErrSkip
			}
			mu.Lock()
			defer mu.Unlock()
			got = append(got, c)
			return func() error { mu.Lock(); released++; mu.Unlock(); return nil }, nil
		},
		Logger: nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !harness.Poll(2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 }) {
		t.Fatalf("the exec of %s was not offered; stats %+v", bin, w.Stats())
	}
	mu.Lock()
	c := got[0]
	mu.Unlock()
	if !c.Exe || c.PID != uint32(cmd.Process.Pid) || c.ExecNs == 0 {
		t.Errorf("candidate %+v, want the executable of pid %d with its exec time", c, cmd.Process.Pid)
	}
	st := w.Stats()
	t.Logf("exec to probed: %v", st.LastLatency)
	if st.Probed != 1 || st.LastLatency <= 0 || st.LastLatency > 500*time.Millisecond {
		t.Errorf("stats %+v: want 1 file probed within 500ms of its exec", st)
	}
	// Still reachable: kept.
	w.collect()
	if w.Stats().Probed != 1 {
		t.Fatalf("released while its process runs")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	w.collect()
	mu.Lock()
	defer mu.Unlock()
	if released != 1 || w.Stats().Probed != 0 || w.Stats().Released != 1 {
		t.Errorf("after the file is gone: released %d times, stats %+v", released, w.Stats())
	}
}

func TestMappedFiles(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 123 /usr/bin/curl
7f1e2a000000-7f1e2a020000 r--p 00000000 fd:01 456 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2a020000-7f1e2a080000 r-xp 00020000 fd:01 456 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2b000000-7f1e2b020000 r--p 00000000 fd:01 789 /opt/my app/libssl.so.1.1
7f1e2c000000-7f1e2c020000 r--p 00000000 fd:01 790 /tmp/libssl.so.3 (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
`
	got := mappedFiles([]byte(maps), func(b string) bool { return strings.HasPrefix(b, "libssl.so") })
	want := []mapping{
		{name: "/usr/lib/x86_64-linux-gnu/libssl.so.3", addrs: "7f1e2a000000-7f1e2a020000"},
		{name: "/opt/my app/libssl.so.1.1", addrs: "7f1e2b000000-7f1e2b020000"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
