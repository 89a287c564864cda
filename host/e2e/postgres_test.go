package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestPostgresTextOutput runs the postgres plugin under bin/ecaphost
// against a throwaway PostgreSQL cluster (Debian's packages, initdb and
// pg_ctl as the postgres user, a Unix socket only) with text output: each
// statement is a line ending in the SQL itself, with its backend, user,
// database, duration and outcome.
func TestPostgresTextOutput(t *testing.T) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		harness.SkipOrFail(t, "no /usr/lib/postgresql/*/bin/postgres (Debian's postgresql package)")
		return
	}
	postgres := bins[len(bins)-1]
	bin := filepath.Dir(postgres)
	requireCapture(t, postgres)
	if _, err := os.Stat(filepath.Join(builtPlugins(t), "ecaphost-plugin-postgres")); err != nil {
		harness.SkipOrFail(t, "the postgres plugin is not built (run make build): %v", err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("initdb refuses root and needs the postgres user: %v", err)
	}
	uid, _ := strconv.ParseUint(pg.Uid, 10, 32)
	gid, _ := strconv.ParseUint(pg.Gid, 10, 32)
	// Not t.TempDir(): the postgres user must reach the directory.
	dir, err := os.MkdirTemp("", "ecaphost-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	asPostgres := func(program string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, program), args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "PGHOST=" + dir, "PGPORT=5432", "PGUSER=postgres", "PGDATABASE=postgres"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	if out, err := asPostgres("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60",
		"-o", "-k "+dir+" -c listen_addresses='' -c fsync=off", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = asPostgres("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run() })

	events := filepath.Join(t.TempDir(), "events.txt")
	h := startHost(t, writeConfig(t, fmt.Sprintf(`plugin_dir = %q
output "file" {
  path   = %q
  format = "text"
}
module "postgres" {
  uid = %d
  config {
    binary = %q
  }
}
`, builtPlugins(t), events, uid, postgres)))
	marker := strings.ReplaceAll(uniq("marker"), "-", "_")
	ok := "SELECT '" + marker + "'"
	bad := "SELEC '" + marker + "'"
	if err := asPostgres("psql", "-X", "-q", "-c", ok, "-c", bad).Run(); err == nil {
		t.Fatal("psql reported no error for a syntax error")
	}
	want := []struct{ what, ends string }{
		{"the statement", " status=ok duration_us="},
		{"the failing statement", " status=error sqlstate=42601 error="},
	}
	var text string
	found := harness.Poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(events)
		text = string(b)
		return strings.Contains(text, ": "+bad+"\n") && strings.Contains(text, ": "+ok+"\n")
	})
	h.stop()
	if !found {
		t.Fatalf("no lines ending in %q and %q in the text output:\n%s", ok, bad, text)
	}
	for _, w := range want {
		line := lineWith(text, w.ends)
		if line == "" {
			t.Errorf("no line of %s holding %q in the text output:\n%s", w.what, w.ends, text)
			continue
		}
		if !strings.Contains(line, " postgres pid=") || !strings.Contains(line, " query status=") ||
			!strings.Contains(line, " user=postgres database=postgres: ") || !strings.Contains(line, marker) {
			t.Errorf("line of %s without module, pid, kind, user, database or its SQL: %s", w.what, line)
		}
	}
}
