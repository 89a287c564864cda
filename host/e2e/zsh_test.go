package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestZshCommandAndExitStatus runs the zsh plugin under bin/ecaphost with
// JSON output: a line typed into an interactive zsh is a command record,
// then a command_exit record with its status.
func TestZshCommandAndExitStatus(t *testing.T) {
	requireCapture(t, "/bin/zsh")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, jsonConfig(t, builtPlugins(t), events, `module "zsh" {
  comm = "zsh"
}
`))
	sh := startShellCmd(t, exec.Command("/bin/zsh", "-f", "-i"), nil)
	m := uniq("zsh-exit")
	line := "echo " + m + " >/dev/null; (exit 3)"
	sh.run(line)
	sh.run("true")
	mine := func(kind string) func(record) bool {
		return func(r record) bool {
			return r.str("module") == "zsh" && r.str("kind") == kind && r.num("pid") == sh.pid() && strings.Contains(r.payload(), m)
		}
	}
	cmd := waitRecord(t, events, 10*time.Second, "the command", mine("command"))
	exit := waitRecord(t, events, 10*time.Second, "its exit status", mine("command_exit"))
	h.stop()
	if cmd.payload() != line || exit.payload() != line {
		t.Errorf("lines %q and %q, want %q", cmd.payload(), exit.payload(), line)
	}
	if got := exit.field("status"); got != "3" {
		t.Errorf("exit status %q, want 3 (record %v)", got, exit)
	}
	if cmd.str("comm") != "zsh" {
		t.Errorf("comm %q, want zsh (record %v)", cmd.str("comm"), cmd)
	}
}
