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

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestMySQLDTextOutput runs the mysqld plugin under bin/ecaphost against a
// throwaway MariaDB (Debian's mariadbd, its own data directory, a Unix
// socket) with text output: each statement is a line ending in the SQL
// itself, with its connection and outcome.
func TestMySQLDTextOutput(t *testing.T) {
	const mariadbd = "/usr/sbin/mariadbd"
	requireCapture(t, mariadbd, "mariadb-install-db", "mariadb")
	if _, err := os.Stat(filepath.Join(builtPlugins(t), "ecaphost-plugin-mysqld")); err != nil {
		harness.SkipOrFail(t, "the mysqld plugin is not built (run make build): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "mysqld.sock")
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"), "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v: %s", err, out)
	}
	srv := exec.Command(mariadbd, "--no-defaults", "--datadir="+filepath.Join(dir, "data"), "--socket="+sock,
		"--skip-networking", "--user=root", "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--log-error="+filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=16M")
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() })
	client := func(sql string) error {
		cmd := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "--user=root", "--batch")
		cmd.Stdin = strings.NewReader(sql)
		return cmd.Run()
	}
	if !harness.Poll(60*time.Second, func() bool { return client("SELECT 1;") == nil }) {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("MariaDB did not answer within 60s:\n%s", log)
	}

	events := filepath.Join(dir, "events.txt")
	h := startHost(t, writeConfig(t, fmt.Sprintf(`plugin_dir = %q
output "file" {
  path   = %q
  format = "text"
}
module "mysqld" {
  pid = %d
  config {
    binary = %q
  }
}
`, builtPlugins(t), events, srv.Process.Pid, mariadbd)))
	marker := strings.ReplaceAll(uniq("marker"), "-", "_")
	ok := "SELECT '" + marker + "'"
	bad := "SELEC '" + marker + "'"
	if err := client(ok + ";\n" + bad + ";\n"); err == nil {
		t.Fatal("the mariadb client reported no error for a syntax error")
	}
	want := []struct{ what, ends string }{
		{"the statement", " status=ok rows_sent=1: " + ok},
		{"the failing statement", " error_code=1064 sqlstate=42000 error="},
	}
	var text string
	found := harness.Poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(events)
		text = string(b)
		return strings.Contains(text, ": "+bad+"\n")
	})
	h.stop()
	if !found {
		t.Fatalf("no line ending in the failing statement %q in the text output:\n%s", bad, text)
	}
	for _, w := range want {
		line := lineWith(text, w.ends)
		if line == "" {
			t.Errorf("no line of %s holding %q in the text output:\n%s", w.what, w.ends, text)
			continue
		}
		if !strings.Contains(line, " mysqld pid=") || !strings.Contains(line, " conn=") || !strings.Contains(line, " query duration_us=") {
			t.Errorf("line of %s without module, pid, connection, kind or duration: %s", w.what, line)
		}
	}
}

// lineWith returns the first line of text containing s.
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
