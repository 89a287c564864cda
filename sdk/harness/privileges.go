package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Run-time checks of what a privileged test needs. They are checked when
// the test runs, not hidden behind build tags: without them the test is
// skipped, except under ECAPHOST_E2E=1 (set by CI), where it fails, so
// that a green run means the probes really ran.

// SkipOrFail ends a test the machine cannot run, saying why: it skips the
// test, or fails it when the environment sets ECAPHOST_E2E=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("ECAPHOST_E2E") == "1" {
		t.Fatalf("ECAPHOST_E2E=1 but the test cannot run: %s", msg)
		return
	}
	t.Skipf("%s (set ECAPHOST_E2E=1 to make this a failure)", msg)
}

// RequirePrivileges checks that the machine can load and attach eBPF
// uprobes — root, kernel BTF (/sys/kernel/btf/vmlinux) and the uprobe PMU
// — and has everything in needs: a name without a slash is a program that
// must be on PATH, one with a slash a file that must exist. When anything
// is missing it calls SkipOrFail with a message naming all of it.
func RequirePrivileges(t testing.TB, needs ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		missing = append(missing, "kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err != nil {
		missing = append(missing, "uprobe PMU (/sys/bus/event_source/devices/uprobe)")
	}
	for _, n := range needs {
		if strings.Contains(n, "/") {
			if _, err := os.Stat(n); err != nil {
				missing = append(missing, n)
			}
		} else if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n+" on PATH")
		}
	}
	if len(missing) > 0 {
		SkipOrFail(t, "needs %s", strings.Join(missing, ", "))
	}
}
