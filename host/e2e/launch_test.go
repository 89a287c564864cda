package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// muteScript is a plugin that never says its go-plugin handshake.
const muteScript = "#!/bin/sh\nexec sleep 60\n"

// startedAfter spawns the host on config and returns how long openssl
// took to start, from the host's exec to its "module started" line.
func startedAfter(t *testing.T, config string) (*host, time.Duration) {
	t.Helper()
	began := time.Now()
	h := spawnHost(t, config)
	h.waitLog("module started: module=openssl", 30*time.Second)
	return h, time.Since(began)
}

// TestStuckHandshakeDelaysNoOne: beside a plugin that never completes
// its handshake, openssl starts as fast as alone and captures; SIGINT,
// while the other is still stuck, ends the host within 2 s, cleanly.
func TestStuckHandshakeDelaysNoOne(t *testing.T) {
	requireOpenSSL(t)
	dir := copyPlugin(t, "openssl", 0o755)
	if err := os.WriteFile(filepath.Join(dir, "ecaphost-plugin-mute"), []byte(muteScript), 0o755); err != nil {
		t.Fatal(err)
	}
	port := tlspeer.SServer(t, webRoot(t, map[string]string{"x.txt": "x\n"}))
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h, alone := startedAfter(t, jsonConfig(t, dir, events, `module "openssl" {}`))
	h.stop()

	h, beside := startedAfter(t, jsonConfig(t, dir, events, "module \"mute\" {}\nmodule \"openssl\" {}\n"))
	t.Logf("openssl started %v after the host alone, %v beside a plugin stuck in its handshake", alone.Round(time.Millisecond), beside.Round(time.Millisecond))
	// Timings drift with the machine's load: what must hold is that
	// openssl did not wait for the stuck plugin's launch to end (the
	// handshake timeout is 10 s), which was still going on.
	if beside >= 8*time.Second || strings.Contains(h.stderr.String(), "module=mute") {
		t.Errorf("openssl started %v after the host beside the stuck plugin (%v alone), after it was given up on", beside, alone)
	}
	pid, _ := runCommand(t, "curl", "-sSk", fmt.Sprintf("https://127.0.0.1:%d/x.txt", port))
	waitRecord(t, events, 10*time.Second, "curl's request", httpMessage("http_request", pid, func(record) bool { return true }))
	took := h.interrupt()
	t.Logf("SIGINT ended the host in %v, the other plugin still in its handshake", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("SIGINT took %v to end the host, want 2s at most", took)
	}
	if h.err != nil || strings.Contains(h.stderr.String(), "no module could start") {
		t.Errorf("exit %v; want a clean stop:\n%s", h.err, h.stderr.String())
	}
}

// brokenModules is a config of modules in every state SIGINT may find
// them: capturing, stuck in Start, deaf to Stop, stuck in the handshake.
func brokenModules(t *testing.T) (config, events, dir string) {
	dir = testPlugins(t, []string{"plain", "hang", "deaf"}, map[string]string{"mute": muteScript})
	events = filepath.Join(t.TempDir(), "events.jsonl")
	return jsonConfig(t, dir, events, "module \"plain\" {}\nmodule \"hang\" {}\nmodule \"deaf\" {}\nmodule \"mute\" {}\n"), events, dir
}

func greeting(name string) func(record) bool {
	return func(r record) bool { return r.str("module") == name && r.str("kind") == "greeting" }
}

// TestSIGINTStopsWithin2s: SIGINT ends the host within 2 s whatever its
// plugins do, and kills every one of them.
func TestSIGINTStopsWithin2s(t *testing.T) {
	cfg, events, dir := brokenModules(t)
	h := spawnHost(t, cfg, "--start-timeout", "30s")
	waitRecord(t, events, 15*time.Second, "plain's greeting", greeting("plain"))
	waitRecord(t, events, 15*time.Second, "deaf's greeting", greeting("deaf"))
	took := h.interrupt()
	t.Logf("SIGINT ended the host in %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("SIGINT took %v to end the host, want 2s at most", took)
	}
	if h.err != nil {
		t.Errorf("exit %v, want 0", h.err)
	}
	noPluginLeft(t, dir)
}

// TestSecondSIGINTExitsAtOnce: a second SIGINT kills every plugin (which
// detaches their probes) and exits without waiting for them.
func TestSecondSIGINTExitsAtOnce(t *testing.T) {
	cfg, events, dir := brokenModules(t)
	h := spawnHost(t, cfg, "--start-timeout", "30s")
	waitRecord(t, events, 15*time.Second, "deaf's greeting", greeting("deaf"))
	if err := h.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	h.waitLog("stopping: detaching probes", 5*time.Second)
	took := h.interrupt()
	t.Logf("the second SIGINT ended the host in %v", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the second SIGINT took %v to end the host, want 1s at most", took)
	}
	if !strings.Contains(h.stderr.String(), "stopping at once") {
		t.Errorf("the forced stop was not logged:\n%s", h.stderr.String())
	}
	if ee, ok := h.err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1 (the last events may be lost)", h.err)
	}
	noPluginLeft(t, dir)
}

// noPluginLeft fails the test if a process of dir's plugins still runs.
func noPluginLeft(t *testing.T, dir string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // SIGKILL is delivered, not awaited
	if out, err := exec.Command("pgrep", "-af", dir).Output(); err == nil {
		t.Errorf("plugin processes left:\n%s", out)
	}
}
