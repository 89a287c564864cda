package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"golang.org/x/sys/unix"
)

// testPlugins builds e2e/testdata/testplugin once under each name in a
// private plugin directory, plus the shell scripts given (name → script).
func testPlugins(t *testing.T, names []string, scripts map[string]string) string {
	t.Helper()
	requireBuilt(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testplugin")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/testplugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	for _, n := range names {
		if err := os.Link(bin, filepath.Join(dir, "ecaphost-plugin-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	for n, script := range scripts {
		if err := os.WriteFile(filepath.Join(dir, "ecaphost-plugin-"+n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAPIVersionMismatchRefused(t *testing.T) {
	dir := testPlugins(t, []string{"future"}, nil)
	cfg := writeConfig(t, `plugin_dir = "`+dir+`"
module "future" {}
`)
	code, out := ecaphost(t, 30*time.Second, "validate", cfg)
	if code != 2 || !strings.Contains(out, "plugin future") || !strings.Contains(out, fmt.Sprintf("module API versions [99], this host speaks %v", sdk.APIVersions)) {
		t.Errorf("exit %d; want 2 and a refusal naming the plugin and both version lists:\n%s", code, out)
	}
}

// TestPluginTransport: the host picks the newest API version a plugin
// speaks and still runs a plugin of version 1 (events as messages, not
// packed); each plugin's socket lives in a directory only root can enter,
// gone when the host exits.
func TestPluginTransport(t *testing.T) {
	dir := testPlugins(t, []string{"plain", "legacy"}, nil)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, jsonConfig(t, dir, events, `module "plain" {}
module "legacy" {}
`))
	greetings := map[string]record{}
	for _, name := range []string{"plain", "legacy"} {
		greetings[name] = waitRecord(t, events, 10*time.Second, name+"'s greeting", func(r record) bool {
			return r.str("module") == name && r.str("kind") == "greeting"
		})
	}
	// priority = "background" (the default): the host's threads wait for
	// idle CPU, the plugins' do not.
	checkPolicies(t, "the host", h.cmd.Process.Pid, unix.SCHED_IDLE)
	pids := h.pluginPIDs("plain")
	if len(pids) == 0 {
		t.Error("no plugin process found to check")
	}
	for _, pid := range pids {
		checkPolicies(t, "plugin plain", pid, unix.SCHED_NORMAL)
	}
	h.stop()
	newest := strconv.FormatUint(uint64(sdk.APIVersions[len(sdk.APIVersions)-1]), 10)
	for name, want := range map[string]string{"plain": newest, "legacy": "1"} {
		g := greetings[name]
		if got := g.field("api"); got != want {
			t.Errorf("%s: API version %q, want %s", name, got, want)
		}
		if got := g.payload(); got != "hello from "+name {
			t.Errorf("%s: payload %q", name, got)
		}
		sock := g.field("socket_dir")
		if sock == "" || g.field("socket_dir_mode") != "700" {
			t.Errorf("%s: socket directory %q mode %q, want one of mode 700", name, sock, g.field("socket_dir_mode"))
			continue
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("%s: socket directory %s left behind (stat: %v)", name, sock, err)
		}
	}
}

// checkPolicies fails the test unless every thread of pid has policy.
func checkPolicies(t *testing.T, what string, pid, policy int) {
	t.Helper()
	ps, err := threadPolicies(pid)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for tid, p := range ps {
		if p != policy {
			t.Errorf("%s: thread %d has scheduling policy %d, want %d (all %v)", what, tid, p, policy, ps)
			return
		}
	}
}

// threadPolicies returns the scheduling policy of each thread of pid, from
// field 41 of /proc/PID/task/TID/stat (proc(5)).
func threadPolicies(pid int) (map[int]int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return nil, fmt.Errorf("listing the threads of %d: %v", pid, err)
	}
	out := map[int]int{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// The command name, field 2, may hold spaces: count from after it.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) < 39 {
			return nil, fmt.Errorf("%s: %d fields after the command name", p, len(fields))
		}
		tid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		policy, err2 := strconv.Atoi(fields[38]) // field 41
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: %v %v", p, err1, err2)
		}
		out[tid] = policy
	}
	return out, nil
}

func TestPluginWithoutOptionalCapabilityRuns(t *testing.T) {
	dir := testPlugins(t, []string{"plain"}, nil)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, jsonConfig(t, dir, events, `module "plain" {}
`))
	waitRecord(t, events, 10*time.Second, "the plain plugin's event", func(r record) bool {
		return r.str("module") == "plain" && r.str("kind") == "greeting"
	})
	h.stop()
	if !strings.Contains(h.stderr.String(), "does not list its probes") {
		t.Errorf("the missing capability was not noted:\n%s", h.stderr.String())
	}
}

// TestBrokenPluginsDoNotStopOthers: plugins that print garbage, exit at
// once or hang in Start are each reported by name within a bounded time,
// and the working module captures all along.
func TestBrokenPluginsDoNotStopOthers(t *testing.T) {
	dir := testPlugins(t, []string{"plain", "hang"}, map[string]string{
		"garbage": "#!/bin/sh\necho 'this is not a handshake'\nsleep 60\n",
		"exitnow": "#!/bin/sh\nexit 3\n",
	})
	events := filepath.Join(t.TempDir(), "events.jsonl")
	cfg := jsonConfig(t, dir, events, `module "garbage" {}
module "exitnow" {}
module "hang" {}
module "plain" {}
`)
	began := time.Now()
	h := startHost(t, cfg, "--start-timeout", "2s")
	t.Logf("capturing %v after start", time.Since(began).Round(time.Millisecond))
	waitRecord(t, events, 10*time.Second, "the working module's event", func(r record) bool {
		return r.str("module") == "plain" && r.str("kind") == "greeting"
	})
	for _, name := range []string{"garbage", "exitnow", "hang"} {
		waitRecord(t, events, 5*time.Second, "the gap record of "+name, func(r record) bool {
			return r.str("module") == name && r.str("kind") == "host.gap"
		})
	}
	log := h.stderr.String()
	for _, want := range []string{"this is not a handshake", "plugin exitnow", "module hang: did not start within 2s"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if elapsed := time.Since(began); elapsed > 20*time.Second {
		t.Errorf("reporting the broken plugins took %v", elapsed)
	}
	h.stop()
}
