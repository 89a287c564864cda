package zshmod

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/terminal"
	"github.com/ecaphost/ecaphost/sdk/shellrec"
)

// startModule drives the module's ebpfbase.Module with the bytecode of
// mode (Run is left to the test).
func startModule(t *testing.T, mode ebpfbase.BytecodeMode, common sdk.Common) (*ebpfbase.Module, *harness.Driven) {
	t.Helper()
	m := ebpfbase.New(New())
	m.Bytecode = mode
	return m, harness.Drive(t, m, sdk.Settings{Common: common})
}

const prompt = "ECAPTEST> "

// zshrc sets a prompt the test counts and keeps history off the disk.
const zshrc = "PS1='" + prompt + "'\nPS2='ECAPCONT> '\nunsetopt PROMPT_SP\nHISTFILE=\n"

// startShell starts an interactive zsh, with zle, on a pseudo-terminal.
func startShell(t *testing.T) *terminal.Terminal {
	t.Helper()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".zshrc"), []byte(zshrc), 0o600); err != nil {
		t.Fatal(err)
	}
	// NO_GLOBAL_RCS: /etc/zsh/zshrc and the like are the machine's, not
	// the test's.
	cmd := exec.Command("/bin/zsh", "-i", "-o", "NO_GLOBAL_RCS")
	cmd.Env = []string{"HOME=" + home, "ZDOTDIR=" + home, "TERM=dumb", "PATH=/usr/bin:/bin"}
	return terminal.Start(t, cmd, prompt)
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
			m, r := startModule(t, tc.mode, sdk.Common{})
			r.Run()
			if m.CORE() != tc.core {
				t.Fatalf("loaded CO-RE=%v, want %v", m.CORE(), tc.core)
			}
			marker := harness.Marker(t)
			echo := "echo " + marker
			started := time.Now()
			sh.Type(t, echo)
			sh.Type(t, "false")
			sh.Type(t, "(exit 3) || true; (exit 7)")
			sh.Type(t, "for i in 1 2", "do echo x$i", "done")
			sh.Type(t, "fi") // a parse error
			sh.Type(t, "")   // runs nothing: no event
			sh.Type(t, "true")

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
				want = append(want, struct{ kind, line, status string }{shellrec.KindCommand, l.line, ""},
					struct{ kind, line, status string }{shellrec.KindCommandExit, l.line, l.status})
			}
			ok := harness.Poll(5*time.Second, func() bool { return harness.Find(r.Sink.Events(sh.PID()), shellrec.KindCommandExit, "true") != nil })
			evs := r.Sink.Events(sh.PID())
			if !ok {
				t.Fatalf("events of zsh %d: %s", sh.PID(), harness.Describe(evs))
			}
			if len(evs) != len(want) {
				t.Errorf("%d events, want %d: %s", len(evs), len(want), harness.Describe(evs))
			}
			for _, w := range want {
				ev := harness.Find(evs, w.kind, w.line)
				if ev == nil {
					t.Errorf("no %s event for %q; events: %s", w.kind, w.line, harness.Describe(evs))
					continue
				}
				if st, _ := ev.Field(shellrec.FieldStatus); st != w.status {
					t.Errorf("%s %q: status %q, want %q", w.kind, w.line, st, w.status)
				}
				if ev.Comm != "zsh" || int(ev.TID) != sh.PID() || int(ev.UID) != os.Getuid() {
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
	_, r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{PID: uint32(a.PID())})
	r.Run()
	ma, mb := harness.Marker(t), harness.Marker(t)
	b.Type(t, "echo "+mb)
	a.Type(t, "echo "+ma)
	b.Type(t, "true")
	a.Type(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return harness.Find(r.Sink.Events(a.PID()), shellrec.KindCommandExit, "echo "+ma) != nil }) {
		t.Fatalf("filtered-in zsh %d not captured: %s", a.PID(), harness.Describe(r.Sink.Events(a.PID())))
	}
	r.Stop(t)
	for _, ev := range r.Sink.Events(0) {
		if int(ev.PID) != a.PID() {
			t.Errorf("event of pid %d with the filter on %d: %s", ev.PID, a.PID(), harness.Describe([]*sdk.Event{ev}))
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
			_, r := startModule(t, ebpfbase.BytecodeAuto, tc.common)
			r.Run()
			marker := harness.Marker(t)
			sh.Type(t, "echo "+marker)
			sh.Type(t, "true")
			got := harness.Poll(2*time.Second, func() bool {
				return harness.Find(r.Sink.Events(sh.PID()), shellrec.KindCommandExit, "echo "+marker) != nil
			})
			if got != tc.capture {
				t.Errorf("captured %v, want %v: %s", got, tc.capture, harness.Describe(r.Sink.Events(sh.PID())))
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
	_, r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{PID: uint32(sh.PID()), BufferKiB: 4})
	const lines = 60
	for range lines {
		sh.Type(t, "true")
	}
	r.Run()
	r.Stop(t)
	lost, ok := r.Sink.Counter(ebpfbase.CounterReserveFailed)
	if !ok {
		t.Fatalf("counter %s not reported", ebpfbase.CounterReserveFailed)
	}
	delivered := len(r.Sink.Events(sh.PID()))
	produced := 2 * lines // a command record and, at the next prompt, its exit record
	t.Logf("ring of 4 KiB: %d records produced, %d delivered, %d counted lost", produced, delivered, lost)
	if lost == 0 {
		t.Error("no lost record counted although the ring was full")
	}
	if delivered+int(lost) != produced {
		t.Errorf("delivered %d + lost %d != produced %d", delivered, lost, produced)
	}
	if n, ok := r.Sink.Counter(ebpfbase.CounterDecodeErrors); !ok || n != 0 {
		t.Errorf("%s = %d (reported %v), want 0", ebpfbase.CounterDecodeErrors, n, ok)
	}
}

// TestOnlyTypedLines: zsh -c, a zsh script, and the eval and source a
// typed line runs read no line typed into a shell: the typed line is the
// only command, and its exit event the only exit.
func TestOnlyTypedLines(t *testing.T) {
	harness.RequirePrivileges(t, "/bin/zsh")
	sh := startShell(t)
	_, r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{})
	r.Run()
	mk := harness.Marker(t)
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
	sh.Type(t, line)
	sh.Type(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return harness.Find(r.Sink.Events(sh.PID()), shellrec.KindCommandExit, line) != nil }) {
		t.Fatalf("typed line not captured: %s", harness.Describe(r.Sink.Events(sh.PID())))
	}
	r.Stop(t)
	var with []*sdk.Event
	for _, ev := range r.Sink.Events(0) {
		if strings.Contains(string(ev.Payload), mk) {
			with = append(with, ev)
		}
	}
	if len(with) != 2 || harness.Find(with, shellrec.KindCommand, line) == nil || harness.Find(with, shellrec.KindCommandExit, line) == nil {
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
		in.Kill()
		harness.Poll(5*time.Second, func() bool { return os.Remove(dir) == nil })
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(in.PID())), 0o644); err != nil {
		t.Fatalf("moving zsh %d into %s: %v", in.PID(), dir, err)
	}
	id, level, err := cgroup.ID(mount, strings.TrimPrefix(dir, mount))
	if err != nil {
		t.Fatal(err)
	}
	_, r := startModule(t, ebpfbase.BytecodeAuto, sdk.Common{CgroupID: id, CgroupLevel: level, CgroupPath: dir})
	r.Run()
	mi, mo := harness.Marker(t), harness.Marker(t)
	out.Type(t, "echo "+mo)
	in.Type(t, "echo "+mi)
	in.Type(t, "true")
	if !harness.Poll(5*time.Second, func() bool { return harness.Find(r.Sink.Events(in.PID()), shellrec.KindCommandExit, "echo "+mi) != nil }) {
		t.Fatalf("the shell in cgroup %s was not captured: %s", dir, harness.Describe(r.Sink.Events(in.PID())))
	}
	r.Stop(t)
	if evs := r.Sink.Events(out.PID()); len(evs) != 0 {
		t.Errorf("the shell outside cgroup %s was captured: %s", dir, harness.Describe(evs))
	}
}
