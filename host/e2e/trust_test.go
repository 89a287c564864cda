package e2e

import (
	"os"
	"path/filepath"
	"strings"
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
