package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

func bashConfig(t *testing.T, events string, extra string) string {
	return jsonConfig(t, builtPlugins(t), events, fmt.Sprintf(`module "bash" {
  %s
  config {
    readline_binary = "/bin/bash"
  }
}
`, extra))
}

func isCommand(pid int, marker string) func(record) bool {
	return func(r record) bool {
		return r.str("module") == "bash" && r.str("kind") == "command" && r.num("pid") == pid && strings.Contains(r.payload(), marker)
	}
}

// bashProgramNames are the eBPF program names in the bash plugin's object.
// bpftool shows the full name from BTF where the kernel has it.
func bashProgramNames(t *testing.T) []string {
	t.Helper()
	objs, _ := filepath.Glob(filepath.Join(repoRoot(t), "plugins", "bash", "bpf", "*.o"))
	if len(objs) == 0 {
		t.Fatal("no bash eBPF object in plugins/bash/bpf")
	}
	spec, err := ebpf.LoadCollectionSpec(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range spec.Programs {
		names = append(names, name)
	}
	return names
}

// loadedPrograms returns the BPF programs loaded now, by id. Ids are
// never reused while a program lives, so a test tells its own programs
// from those of another capture running on the machine by their ids.
func loadedPrograms(t *testing.T) map[int]string {
	t.Helper()
	out, err := exec.Command("bpftool", "prog", "show", "--json").Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	var progs []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		t.Fatalf("bpftool output: %v", err)
	}
	loaded := map[int]string{}
	for _, p := range progs {
		loaded[p.ID] = p.Name
	}
	return loaded
}

func TestBashCommandsCaptured(t *testing.T) {
	requireCapture(t, "bpftool")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	before := loadedPrograms(t)
	h := startHost(t, bashConfig(t, events, ""))

	// The bash programs this host loaded: loaded now, not before it started.
	ours, names := map[int]string{}, map[string]bool{}
	for id, name := range loadedPrograms(t) {
		if _, old := before[id]; !old {
			ours[id], names[name] = name, true
		}
	}
	for _, p := range bashProgramNames(t) {
		if !names[p] {
			t.Errorf("program %s not loaded while capturing (loaded since start: %v)", p, ours)
		}
	}

	sh := startShell(t)
	m1, m2 := uniq("marker-one"), uniq("marker-two")
	sh.run("echo " + m1)
	sh.run("echo " + m2 + " && false")
	waitRecord(t, events, 10*time.Second, "the first command", isCommand(sh.pid(), m1))
	waitRecord(t, events, 10*time.Second, "the second command", isCommand(sh.pid(), m2))
	h.stop()

	st, err := os.Stat(events)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("output file mode %04o, want 0600", mode)
	}
	if !strings.Contains(h.stderr.String(), "MODULE") || !strings.Contains(h.stderr.String(), "bash") {
		t.Errorf("no exit summary:\n%s", h.stderr.String())
	}
	// The kernel frees a program once its last reference is gone, which
	// may trail the plugin's exit by a moment.
	var left map[int]string
	harness.Poll(3*time.Second, func() bool {
		left = map[int]string{}
		now := loadedPrograms(t)
		for id, name := range ours {
			if _, ok := now[id]; ok {
				left[id] = name
			}
		}
		return len(left) == 0
	})
	for id, name := range left {
		t.Errorf("program %s (id %d) still loaded after SIGINT", name, id)
	}
}

func TestBashExitStatus(t *testing.T) {
	requireCapture(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, bashConfig(t, events, ""))
	sh := startShell(t)
	m := uniq("exit-status")
	sh.run("echo " + m + " >/dev/null; (exit 3)")
	sh.run("true")
	r := waitRecord(t, events, 10*time.Second, "the exit status", func(r record) bool {
		return r.str("kind") == "command_exit" && r.num("pid") == sh.pid() && strings.Contains(r.payload(), m)
	})
	if got := r.field("status"); got != "3" {
		t.Errorf("exit status %q, want 3 (record %v)", got, r)
	}
	h.stop()
}

func TestBashPIDFilter(t *testing.T) {
	requireCapture(t)
	watched, other := startShell(t), startShell(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, bashConfig(t, events, fmt.Sprintf("pid = %d", watched.pid())))
	mo, mw := uniq("other"), uniq("watched")
	other.run("echo " + mo)
	watched.run("echo " + mw)
	// The watched shell's command proves capture was live while the other
	// shell typed.
	waitRecord(t, events, 10*time.Second, "the watched shell's command", isCommand(watched.pid(), mw))
	h.stop()
	for _, r := range readJSON(t, events) {
		if r.num("pid") == other.pid() || strings.Contains(r.payload(), mo) {
			t.Errorf("pid filter %d let through a record of pid %d: %v", watched.pid(), other.pid(), r)
		}
	}
}

func TestPluginCrashIsRestarted(t *testing.T) {
	requireCapture(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, bashConfig(t, events, ""))
	sh := startShell(t)
	before, after := uniq("before-crash"), uniq("after-crash")
	sh.run("echo " + before)
	last := waitRecord(t, events, 10*time.Second, "the command before the crash", isCommand(sh.pid(), before))

	pids := h.pluginPIDs("bash")
	if len(pids) != 1 {
		t.Fatalf("want one bash plugin process, found %v", pids)
	}
	killed := time.Now()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gap := waitRecord(t, events, 15*time.Second, "the gap record", func(r record) bool {
		return r.str("module") == "bash" && r.str("kind") == "host.gap"
	})
	notice := waitRecord(t, events, 30*time.Second, "the restart notice", func(r record) bool {
		return r.str("module") == "bash" && r.str("kind") == "host.notice"
	})
	// The gap starts at the last event before the kill, not when the host
	// noticed, and the notice measures it from there to the restart.
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("time %q: %v", s, err)
		}
		return tm
	}
	lastAt, gapAt := at(last.str("time")), at(gap.str("time"))
	if gapAt.Before(lastAt) || !gapAt.Before(killed) || !at(gap.field("last_event")).Equal(gapAt) {
		t.Errorf("gap record at %v (last_event %s), want the last event's time, from %v to the kill at %v", gapAt, gap.field("last_event"), lastAt, killed)
	}
	if !at(notice.field("gap_started")).Equal(gapAt) || at(notice.field("resumed")).Before(killed) || notice.field("gap_seconds") == "" {
		t.Errorf("restart notice %v: want gap_started at the gap record's time and resumed after the kill at %v", notice, killed)
	}
	sh.run("echo " + after)
	waitRecord(t, events, 10*time.Second, "the command after the restart", isCommand(sh.pid(), after))
	if np := h.pluginPIDs("bash"); len(np) != 1 || np[0] == pids[0] {
		t.Errorf("plugin processes after restart: %v (killed %d)", np, pids[0])
	}
	h.stop()
	if !strings.Contains(h.stderr.String(), "RESTARTS") {
		t.Errorf("no summary:\n%s", h.stderr.String())
	}
}

func TestPluginsDieWithHost(t *testing.T) {
	requireCapture(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, bashConfig(t, events, ""))
	pids := h.pluginPIDs("bash")
	if len(pids) != 1 {
		t.Fatalf("want one bash plugin process, found %v", pids)
	}
	sockDir := pluginSockDir(t, pids[0])
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.done
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pids[0], 0) == nil {
		// A zombie reaped by init still answers kill(0) briefly.
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still alive 5s after kill -9 of the host", pids[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The killed host could not remove its plugin's socket directory: the
	// next host does.
	if _, err := os.Stat(sockDir); err != nil {
		t.Fatalf("socket directory %s gone before the next host: %v", sockDir, err)
	}
	h2 := startHost(t, bashConfig(t, filepath.Join(t.TempDir(), "events.jsonl"), ""))
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s of the killed host still there once another host launched: %v", sockDir, err)
	}
	h2.stop()
}

// pluginSockDir returns the socket directory the host gave plugin pid.
func pluginSockDir(t *testing.T, pid int) string {
	t.Helper()
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if dir, ok := strings.CutPrefix(kv, "PLUGIN_UNIX_SOCKET_DIR="); ok {
			return dir
		}
	}
	t.Fatalf("plugin %d has no PLUGIN_UNIX_SOCKET_DIR", pid)
	return ""
}
