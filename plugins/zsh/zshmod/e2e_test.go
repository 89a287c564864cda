package zshmod

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// sink collects events and counters.
type sink struct {
	mu       sync.Mutex
	events   []*sdk.Event
	counters map[string]uint64
}

func (s *sink) Emit(ev *sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev.Clone())
}

func (s *sink) SetCounter(name string, total uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counters == nil {
		s.counters = map[string]uint64{}
	}
	s.counters[name] = total
}

func (s *sink) of(pid int) []*sdk.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*sdk.Event
	for _, ev := range s.events {
		if int(ev.PID) == pid {
			out = append(out, ev)
		}
	}
	return out
}

func (s *sink) counter(name string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.counters[name]
	return v, ok
}

// running is a started module whose Run goroutine the test controls.
type running struct {
	m    *ebpfbase.Module
	sink *sink
	errc chan error
}

// startModule starts the module and runs it until the test ends (or
// stop is called).
func startModule(t *testing.T, mode ebpfbase.BytecodeMode, common sdk.Common, run bool) *running {
	t.Helper()
	r := &running{m: ebpfbase.New(New()), sink: &sink{}}
	r.m.Bytecode = mode
	logger := hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
	if err := r.m.Init(t.Context(), logger, sdk.Settings{Common: common}, r.sink); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := r.m.Start(); err != nil {
		_ = r.m.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		r.stop(t)
		if err := r.m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if run {
		r.run()
	}
	return r
}

func (r *running) run() {
	errc := make(chan error, 1)
	r.errc = errc
	go func() { errc <- r.m.Run() }()
}

// stop stops the module and waits for Run, once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	_ = r.m.Stop()
	if r.errc == nil {
		return
	}
	errc := r.errc
	r.errc = nil
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after Stop")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// shell is an interactive zsh, with zle, on a pseudo-terminal.
type shell struct {
	cmd     *exec.Cmd
	tty     *os.File
	mu      sync.Mutex
	out     bytes.Buffer
	prompts int
}

const prompt = "ECAPTEST> "

// zshrc sets a prompt the test counts and keeps history off the disk.
const zshrc = "PS1='" + prompt + "'\nPS2='ECAPCONT> '\nunsetopt PROMPT_SP\nHISTFILE=\n"

func startShell(t *testing.T) *shell {
	t.Helper()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".zshrc"), []byte(zshrc), 0o600); err != nil {
		t.Fatal(err)
	}
	// NO_GLOBAL_RCS: /etc/zsh/zshrc and the like are the machine's, not
	// the test's.
	cmd := exec.Command("/bin/zsh", "-i", "-o", "NO_GLOBAL_RCS")
	cmd.Env = []string{"HOME=" + home, "ZDOTDIR=" + home, "TERM=dumb", "PATH=/usr/bin:/bin"}
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("starting zsh on a pty: %v", err)
	}
	sh := &shell{cmd: cmd, tty: tty}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			sh.mu.Lock()
			sh.out.Write(buf[:n])
			sh.prompts = strings.Count(sh.out.String(), prompt)
			sh.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = tty.Close()
	})
	if !sh.waitPrompts(1) {
		t.Fatalf("no prompt from zsh; output %q", sh.output())
	}
	return sh
}

func (sh *shell) pid() int { return sh.cmd.Process.Pid }

func (sh *shell) output() string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.out.String()
}

func (sh *shell) waitPrompts(n int) bool {
	return harness.Poll(10*time.Second, func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.prompts >= n
	})
}

// typeLines types each line (continuation lines of one command included)
// and waits for the next main prompt.
func (sh *shell) typeLines(t *testing.T, lines ...string) {
	t.Helper()
	sh.mu.Lock()
	before := sh.prompts
	sh.mu.Unlock()
	for _, l := range lines {
		if _, err := sh.tty.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	if !sh.waitPrompts(before + 1) {
		t.Fatalf("no prompt after %q; output %q", lines, sh.output())
	}
}

func randomMarker(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "marker-" + hex.EncodeToString(b)
}

func find(evs []*sdk.Event, kind, line string) *sdk.Event {
	for _, ev := range evs {
		if ev.Kind == kind && string(ev.Payload) == line {
			return ev
		}
	}
	return nil
}

// TestCaptureInteractiveZsh types commands into a real interactive zsh
// and checks their command and command_exit events, with both objects:
// CO-RE (ring buffer) and non-CO-RE (perf event array). The shell starts
// before the probes are attached: it waits at its prompt, as a user's
// shell does when capture starts.
func TestCaptureInteractiveZsh(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	for _, tc := range []struct {
		name string
		mode ebpfbase.BytecodeMode
		core bool
	}{
		{"CO-RE", ebpfbase.BytecodeAuto, true},
		{"non-CO-RE", ebpfbase.BytecodeNonCORE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := startShell(t)
			r := startModule(t, tc.mode, sdk.Common{}, true)
			if r.m.CORE() != tc.core {
				t.Fatalf("loaded CO-RE=%v, want %v", r.m.CORE(), tc.core)
			}
			marker := randomMarker(t)
			echo := "echo " + marker
			started := time.Now()
			sh.typeLines(t, echo)
			sh.typeLines(t, "false")
			sh.typeLines(t, "(exit 3) || true; (exit 7)")
			sh.typeLines(t, "for i in 1 2", "do echo x$i", "done")
			sh.typeLines(t, "fi") // a parse error
			sh.typeLines(t, "")   // runs nothing: no event
			sh.typeLines(t, "true")

			// Each non-empty line: a command event, then an exit event at
			// the next prompt. The empty line has none.
			lines := []struct{ line, status string }{
				{echo, "0"},
				{"false", "1"},
				{"(exit 3) || true; (exit 7)", "7"},
				{"for i in 1 2\ndo echo x$i\ndone", "0"},
				{"fi", "1"},
				{"true", "0"},
			}
			var want []struct{ kind, line, status string }
			for _, l := range lines {
				want = append(want, struct{ kind, line, status string }{KindCommand, l.line, ""},
					struct{ kind, line, status string }{KindCommandExit, l.line, l.status})
			}
			ok := harness.Poll(5*time.Second, func() bool { return find(r.sink.of(sh.pid()), KindCommandExit, "true") != nil })
			evs := r.sink.of(sh.pid())
			if !ok {
				t.Fatalf("events of zsh %d: %s", sh.pid(), harness.Describe(evs))
			}
			if len(evs) != len(want) {
				t.Errorf("%d events, want %d: %s", len(evs), len(want), harness.Describe(evs))
			}
			for _, w := range want {
				ev := find(evs, w.kind, w.line)
				if ev == nil {
					t.Errorf("no %s event for %q; events: %s", w.kind, w.line, harness.Describe(evs))
					continue
				}
				if st, _ := ev.Field(FieldStatus); st != w.status {
					t.Errorf("%s %q: status %q, want %q", w.kind, w.line, st, w.status)
				}
				if ev.Comm != "zsh" || int(ev.TID) != sh.pid() || int(ev.UID) != os.Getuid() {
					t.Errorf("%s %q: comm %q tid %d uid %d", w.kind, w.line, ev.Comm, ev.TID, ev.UID)
				}
				if d := ev.Time.Sub(started); d < -time.Second || d > 30*time.Second {
					t.Errorf("%s %q: time %v is %v from the test", w.kind, w.line, ev.Time, d)
				}
			}
		})
	}
}

// TestPIDFilter runs two shells with the pid filter set to the first:
// the second's commands must not be captured.
func TestPIDFilter(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	a, b := startShell(t), startShell(t)
	r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{PID: uint32(a.pid())}, true)
	ma, mb := randomMarker(t), randomMarker(t)
	b.typeLines(t, "echo "+mb)
	a.typeLines(t, "echo "+ma)
	b.typeLines(t, "true")
	a.typeLines(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return find(r.sink.of(a.pid()), KindCommandExit, "echo "+ma) != nil }) {
		t.Fatalf("filtered-in zsh %d not captured: %s", a.pid(), harness.Describe(r.sink.of(a.pid())))
	}
	r.stop(t)
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	for _, ev := range r.sink.events {
		if int(ev.PID) != a.pid() {
			t.Errorf("event of pid %d with the filter on %d: %s", ev.PID, a.pid(), harness.Describe([]*sdk.Event{ev}))
		}
	}
}

// TestCommAndUIDFilters checks the other two kernel filters: a matching
// comm captures, a different comm or uid captures nothing.
func TestCommAndUIDFilters(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	for _, tc := range []struct {
		name    string
		common  sdk.Common
		capture bool
	}{
		{"comm zsh", sdk.Common{Comm: "zsh"}, true},
		{"comm other", sdk.Common{Comm: "not-zsh"}, false},
		{"uid other", sdk.Common{UID: 4242}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := startShell(t)
			r := startModule(t, ebpfbase.BytecodeAuto, tc.common, true)
			marker := randomMarker(t)
			sh.typeLines(t, "echo "+marker)
			sh.typeLines(t, "true")
			got := harness.Poll(2*time.Second, func() bool { return find(r.sink.of(sh.pid()), KindCommandExit, "echo "+marker) != nil })
			if got != tc.capture {
				t.Errorf("captured %v, want %v: %s", got, tc.capture, harness.Describe(r.sink.of(sh.pid())))
			}
		})
	}
}

// TestLostRecordsAreCounted fills a one-page ring buffer before reading
// it: the records the kernel could not queue must show in
// ringbuf_reserve_failed, and what was delivered plus what was lost must
// account for every record produced.
func TestLostRecordsAreCounted(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	sh := startShell(t)
	r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{PID: uint32(sh.pid()), BufferKiB: 4}, false)
	const lines = 60
	for range lines {
		sh.typeLines(t, "true")
	}
	r.run()
	r.stop(t)
	lost, ok := r.sink.counter(ebpfbase.CounterReserveFailed)
	if !ok {
		t.Fatalf("counter %s not reported", ebpfbase.CounterReserveFailed)
	}
	delivered := len(r.sink.of(sh.pid()))
	produced := 2 * lines // a command record and, at the next prompt, its exit record
	t.Logf("ring of 4 KiB: %d records produced, %d delivered, %d counted lost", produced, delivered, lost)
	if lost == 0 {
		t.Error("no lost record counted although the ring was full")
	}
	if delivered+int(lost) != produced {
		t.Errorf("delivered %d + lost %d != produced %d", delivered, lost, produced)
	}
	if n, ok := r.sink.counter(ebpfbase.CounterDecodeErrors); !ok || n != 0 {
		t.Errorf("%s = %d (reported %v), want 0", ebpfbase.CounterDecodeErrors, n, ok)
	}
}

// TestOnlyTypedLines: zsh -c, a zsh script, and the eval and source a
// typed line runs read no line typed into a shell: the typed line is the
// only command, and its exit event the only exit.
func TestOnlyTypedLines(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	sh := startShell(t)
	r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{}, true)
	mk := randomMarker(t)
	script := filepath.Join(t.TempDir(), "script.zsh")
	if err := os.WriteFile(script, []byte("echo "+mk+"-script\ntrue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-f", "-c", "echo " + mk + "-c; true"}, {"-f", script}} {
		if out, err := exec.Command("/bin/zsh", args...).CombinedOutput(); err != nil || !strings.Contains(string(out), mk) {
			t.Fatalf("zsh %q: %v %s", args, err, out)
		}
	}
	line := "eval 'echo " + mk + "-eval'; source " + script
	sh.typeLines(t, line)
	sh.typeLines(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return find(r.sink.of(sh.pid()), KindCommandExit, line) != nil }) {
		t.Fatalf("typed line not captured: %s", harness.Describe(r.sink.of(sh.pid())))
	}
	r.stop(t)
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	var with []*sdk.Event
	for _, ev := range r.sink.events {
		if strings.Contains(string(ev.Payload), mk) {
			with = append(with, ev)
		}
	}
	if len(with) != 2 || find(with, KindCommand, line) == nil || find(with, KindCommandExit, line) == nil {
		t.Errorf("events naming the marker: %s; want the typed line's command and command_exit only", harness.Describe(with))
	}
}

// TestCgroupFilter moves one of two shells into a cgroup v2 directory of
// its own and filters on that cgroup: only its lines are captured.
func TestCgroupFilter(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "the cgroup filter needs a cgroup2 hierarchy: %v", err)
	}
	dir, err := os.MkdirTemp(mount, "ecaphost-zsh-test-")
	if err != nil {
		harness.SkipOrFail(t, "creating a cgroup: %v", err)
	}
	in, out := startShell(t), startShell(t)
	// Registered after the shells' cleanups, so it runs before them: the
	// cgroup is empty once its shell is killed; retry until it is.
	t.Cleanup(func() {
		_ = in.cmd.Process.Kill()
		_ = in.cmd.Wait()
		harness.Poll(5*time.Second, func() bool { return os.Remove(dir) == nil })
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(in.pid())), 0o644); err != nil {
		t.Fatalf("moving zsh %d into %s: %v", in.pid(), dir, err)
	}
	id, level, err := cgroup.ID(mount, strings.TrimPrefix(dir, mount))
	if err != nil {
		t.Fatal(err)
	}
	r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{CgroupID: id, CgroupLevel: level, CgroupPath: dir}, true)
	mi, mo := randomMarker(t), randomMarker(t)
	out.typeLines(t, "echo "+mo)
	in.typeLines(t, "echo "+mi)
	in.typeLines(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return find(r.sink.of(in.pid()), KindCommandExit, "echo "+mi) != nil }) {
		t.Fatalf("the shell in cgroup %s was not captured: %s", dir, harness.Describe(r.sink.of(in.pid())))
	}
	r.stop(t)
	if evs := r.sink.of(out.pid()); len(evs) != 0 {
		t.Errorf("the shell outside cgroup %s was captured: %s", dir, harness.Describe(evs))
	}
}
