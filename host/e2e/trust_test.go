package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyPlugin copies bin/plugins/ecaphost-plugin-NAME into a private
// directory with mode and returns the directory.
func copyPlugin(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	requireBuilt(t)
	b, err := os.ReadFile(filepath.Join(builtPlugins(t), "ecaphost-plugin-"+name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ecaphost-plugin-"+name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWorldWritablePluginRefused(t *testing.T) {
	dir := copyPlugin(t, "bash", 0o777)
	cfg := writeConfig(t, `plugin_dir = "`+dir+`"
module "bash" {}
`)
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			code, out := ecaphost(t, 30*time.Second, cmd, cfg)
			if code == 0 || !strings.Contains(out, "Untrusted plugin") || !strings.Contains(out, filepath.Join(dir, "ecaphost-plugin-bash")) ||
				!strings.Contains(out, "writable by group or others") {
				t.Errorf("exit %d; want non-zero and a refusal naming the plugin file:\n%s", code, out)
			}
			if strings.Contains(out, "capturing") {
				t.Errorf("the host started capturing with an untrusted plugin:\n%s", out)
			}
		})
	}
}

func TestLockFileRefusesChangedPlugin(t *testing.T) {
	dir := copyPlugin(t, "bash", 0o755)
	cfg := writeConfig(t, `plugin_dir = "`+dir+`"
module "bash" {}
`)
	if code, out := ecaphost(t, 30*time.Second, "plugins", "lock", "--config", cfg); code != 0 || !strings.Contains(out, "locked bash") {
		t.Fatalf("plugins lock: exit %d:\n%s", code, out)
	}
	if code, out := ecaphost(t, 30*time.Second, "validate", cfg); code != 0 {
		t.Fatalf("validate with the lock, before any change: exit %d:\n%s", code, out)
	}
	if code, out := ecaphost(t, 30*time.Second, "plugins", "--config", cfg); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("plugins before the change: exit %d, want 0 and 'matches':\n%s", code, out)
	}

	// Change one byte of the binary (in its symbol table's padding the
	// program would still run: the checksum is what must catch it).
	p := filepath.Join(dir, "ecaphost-plugin-bash")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			code, out := ecaphost(t, 30*time.Second, cmd, cfg)
			if code == 0 || !strings.Contains(out, "plugin bash") || !strings.Contains(out, "does not match the lock file") {
				t.Errorf("exit %d; want non-zero and a refusal naming bash:\n%s", code, out)
			}
		})
	}
	if code, out := ecaphost(t, 30*time.Second, "plugins", "--config", cfg); code == 0 || !strings.Contains(out, "MISMATCH") {
		t.Errorf("plugins after the change: exit %d, want non-zero and MISMATCH:\n%s", code, out)
	}
}

// TestPluginsNeverRunsAnUnapprovedBinary: after `plugins lock`, the
// plugin's file is swapped for one that would leave a marker file when
// run; `plugins`, validate and run all refuse it and none executes it.
func TestPluginsNeverRunsAnUnapprovedBinary(t *testing.T) {
	requireBuilt(t)
	marker := filepath.Join(t.TempDir(), "ran")
	dir := pluginDir(t, "swapped", "#!/bin/sh\nexit 3\n")
	cfg := writeConfig(t, `plugin_dir = "`+dir+`"
module "swapped" {}
`)
	if code, out := ecaphost(t, 30*time.Second, "plugins", "lock", "--config", cfg); code != 0 {
		t.Fatalf("plugins lock: exit %d:\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "ecaphost-plugin-swapped"), []byte("#!/bin/sh\ntouch "+marker+"\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plugins", "--config", cfg}, {"validate", cfg}, {"run", cfg}} {
		code, out := ecaphost(t, 30*time.Second, args...)
		if code == 0 || !strings.Contains(out, "MISMATCH") && !strings.Contains(out, "does not match the lock file") {
			t.Errorf("%s: exit %d; want a refusal of the changed binary:\n%s", args[0], code, out)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s executed the binary the lock file does not approve:\n%s", args[0], out)
		}
	}
}

// TestTrustRecheckedAtRestart: without a lock file, a plugin file made
// world-writable while its module runs is not relaunched from when the
// plugin dies: each restart is refused, naming the reason.
func TestTrustRecheckedAtRestart(t *testing.T) {
	requireCapture(t)
	dir := copyPlugin(t, "bash", 0o755)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, jsonConfig(t, dir, events, `module "bash" {}`))
	pids := h.pluginPIDs("bash")
	if len(pids) != 1 {
		t.Fatalf("want one bash plugin process, found %v", pids)
	}
	if err := os.Chmod(filepath.Join(dir, "ecaphost-plugin-bash"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitLog("restart failed", 15*time.Second)
	h.stop()
	log := h.stderr.String()
	if !strings.Contains(log, "writable by group or others") || strings.Contains(log, "capture resumed") {
		t.Errorf("the restart was not refused for the file's mode:\n%s", log)
	}
}

// TestSymlinkInSharedPluginDirRefused: another user's symbolic link in a
// world-writable (sticky) plugin_dir, to a good plugin, is refused: that
// user would choose what runs as root.
func TestSymlinkInSharedPluginDirRefused(t *testing.T) {
	requireBuilt(t)
	cred := otherUser(t)
	shared := sharedDir(t)
	asUser(t, cred, "ln -s "+filepath.Join(builtPlugins(t), "ecaphost-plugin-bash")+" "+filepath.Join(shared, "ecaphost-plugin-bash"))
	cfg := writeConfig(t, `plugin_dir = "`+shared+`"
module "bash" {}
`)
	code, out := ecaphost(t, 30*time.Second, "validate", cfg)
	if code != 2 || !strings.Contains(out, "Untrusted plugin") || !strings.Contains(out, shared) {
		t.Errorf("exit %d; want 2 and the link refused:\n%s", code, out)
	}
}

// TestConfigMistakesAreErrors: a plugin_dir that does not exist, a config
// without a module, an output in a missing directory or that is a
// directory are errors naming the problem for validate as for run;
// nothing falls back or "captures" nothing.
func TestConfigMistakesAreErrors(t *testing.T) {
	requireBuilt(t)
	for _, tc := range []struct {
		name, config, want string
	}{
		{"missing plugin_dir", "plugin_dir = \"/nonexistent/plugins\"\nmodule \"bash\" {}\n", "Plugin directory not found"},
		{"no module", "output \"stdout\" {}\n", "No module"},
		{"output in a missing directory", "output \"file\" {\n  path = \"/nonexistent/e.jsonl\"\n}\nmodule \"bash\" {}\n", "directory /nonexistent does not exist"},
		{"output is a directory", "output \"file\" {\n  path = \"/tmp\"\n}\nmodule \"bash\" {}\n", "it is a directory"},
	} {
		for _, cmd := range []string{"validate", "run"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				code, out := ecaphost(t, 30*time.Second, cmd, writeConfig(t, tc.config))
				if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "capturing") {
					t.Errorf("exit %d; want 2 and %q:\n%s", code, tc.want, out)
				}
			})
		}
	}
}
