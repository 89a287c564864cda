package mysqldmod

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// debianServer is the server binary of Debian's mariadb-server, which the
// end-to-end tests run.
const debianServer = "/usr/sbin/mariadbd"

// mariadb is a throwaway MariaDB server: its own data directory, listening
// on a Unix socket only, stopped when the tests end.
type mariadb struct {
	dir  string
	sock string
	cmd  *exec.Cmd
	err  error
}

var (
	serverOnce sync.Once
	theServer  mariadb
)

func TestMain(m *testing.M) {
	code := m.Run()
	theServer.stop()
	os.Exit(code)
}

// startServer returns the package's MariaDB server, started on first use
// (mariadb-install-db takes seconds: the tests share one).
func startServer(t *testing.T) *mariadb {
	t.Helper()
	harness.RequirePrivileges(t, debianServer, "mariadb-install-db", "mariadb")
	serverOnce.Do(func() { theServer.err = theServer.start() })
	if theServer.err != nil {
		t.Fatalf("starting MariaDB: %v", theServer.err)
	}
	return &theServer
}

func (s *mariadb) start() error {
	dir, err := os.MkdirTemp("", "ecaphost-mariadb-")
	if err != nil {
		return err
	}
	s.dir, s.sock = dir, filepath.Join(dir, "mysqld.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w: %s", err, out)
	}
	s.cmd = exec.Command(debianServer, "--no-defaults", "--datadir="+filepath.Join(dir, "data"), "--socket="+s.sock,
		"--skip-networking", "--user=root", "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--log-error="+filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=16M", "--max-allowed-packet=64M")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", debianServer, err)
	}
	if !harness.Poll(60*time.Second, func() bool { _, err := s.query("SELECT 1"); return err == nil }) {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return fmt.Errorf("%s did not answer on %s within 60s; error log:\n%s", debianServer, s.sock, log)
	}
	return nil
}

func (s *mariadb) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *mariadb) pid() int { return s.cmd.Process.Pid }

// query runs sql with the mariadb client (batch mode: tab-separated rows,
// no headers), each statement of sql as its own COM_QUERY, and returns
// its output.
func (s *mariadb) query(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+s.sock, "--user=root",
		"--batch", "--skip-column-names", "--max-allowed-packet=64M")
	cmd.Stdin = strings.NewReader(sql)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("mariadb: %w: %s", err, stderr.String())
	}
	return out.String(), nil
}

// mustQuery is query failing the test on error.
func (s *mariadb) mustQuery(t *testing.T, sql string) string {
	t.Helper()
	out, err := s.query(sql)
	if err != nil {
		t.Fatalf("%v (statement %.200q)", err, sql)
	}
	return out
}
