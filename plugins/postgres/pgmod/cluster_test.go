package pgmod

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cluster is a throwaway PostgreSQL cluster of Debian's packages, run as
// the postgres user in its own directory, listening on a Unix socket only.
type cluster struct {
	bin      string // the directory of initdb, pg_ctl, postgres
	dir      string // data directory and socket, owned by postgres
	port     int
	uid, gid uint32
}

var (
	sharedOnce sync.Once
	shared     *cluster
	sharedErr  error
)

// TestMain stops the shared cluster once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// pgBinDir returns the newest /usr/lib/postgresql/N/bin holding initdb.
func pgBinDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb (Debian's postgresql package)")
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi > vj
	})
	return filepath.Dir(found[0]), nil
}

// sharedCluster starts, once per test binary, the cluster the tests use.
func sharedCluster(t *testing.T) *cluster {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = startCluster() })
	if sharedErr != nil {
		t.Fatalf("starting a PostgreSQL cluster: %v", sharedErr)
	}
	return shared
}

func startCluster() (*cluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("initdb refuses root and needs the postgres user: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	dir, err := os.MkdirTemp("", "ecaphost-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, uid: uint32(uid), gid: uint32(gid)}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A port whose socket is free in our directory: the socket file is
	// the only listener (listen_addresses is empty).
	c.port = 20000 + os.Getpid()%20000
	if out, err := c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c fsync=off -c cluster_name=ecaptest", c.port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return c, nil
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

// postgres is the server binary the cluster runs.
func (c *cluster) postgres() string { return filepath.Join(c.bin, "postgres") }

// command returns program of the cluster's bin directory, run as postgres.
func (c *cluster) command(program string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, program), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "PGHOST=" + c.dir, "PGPORT=" + strconv.Itoa(c.port), "PGUSER=postgres", "PGDATABASE=postgres"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid}}
	return cmd
}

func (c *cluster) run(program string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := c.command(program, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// psql runs sql with psql, each -c its own Query message, and returns
// its output; a statement failing does not stop the next.
func (c *cluster) psql(t *testing.T, sql ...string) string {
	t.Helper()
	args := []string{"-X", "-q", "-A", "-t"}
	for _, s := range sql {
		args = append(args, "-c", s)
	}
	out, _ := c.run("psql", args...)
	return string(out)
}

func (c *cluster) stop() {
	_, _ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop")
	// pg_ctl waits for the postmaster; give its children a moment.
	time.Sleep(100 * time.Millisecond)
	_ = os.RemoveAll(c.dir)
}
