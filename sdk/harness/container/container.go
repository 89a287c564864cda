package container

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// RootFS is a container's root file system directory.
type RootFS struct {
	Dir string
}

// NewRootFS returns a root file system in a temporary directory holding
// copies of programs (names on PATH or absolute paths) at their host
// paths, of every library they load (as ldd lists them, the dynamic
// loader included), /dev/null, /dev/zero, /dev/urandom, a /tmp, and the
// host's merged-/usr links (/bin -> usr/bin...).
func NewRootFS(t testing.TB, programs ...string) *RootFS {
	t.Helper()
	r := &RootFS{Dir: t.TempDir()}
	for _, d := range []string{"tmp", "proc", "dev", "etc"} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(r.Dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	// The host's merged /usr links (/bin -> usr/bin...), so that the
	// paths ldd and PATH give resolve in the root as on the host.
	for _, d := range []string{"bin", "lib", "lib64", "sbin"} {
		if target, err := os.Readlink("/" + d); err == nil && !strings.HasPrefix(target, "/") {
			if err := os.MkdirAll(filepath.Join(r.Dir, filepath.Dir(d), target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(r.Dir, d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, dev := range map[string]int{"null": 3, "zero": 5, "urandom": 9} {
		if err := syscall.Mknod(filepath.Join(r.Dir, "dev", name), syscall.S_IFCHR|0o666, dev|1<<8); err != nil {
			t.Fatalf("creating /dev/%s in the container root: %v", name, err)
		}
	}
	for _, p := range programs {
		path := p
		if !strings.HasPrefix(p, "/") {
			var err error
			if path, err = exec.LookPath(p); err != nil {
				harness.SkipOrFail(t, "needs %s on PATH: %v", p, err)
			}
		}
		r.Add(t, path)
	}
	return r
}

// Add copies each host file into the root as Copy does, with the
// libraries ldd lists for it: for libraries a program loads with dlopen,
// which ldd does not list for the program.
func (r *RootFS) Add(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		r.Copy(t, p)
		r.Copy(t, libraries(t, p)...)
	}
}

// Copy copies each host file (following links) to the same path in the
// root: a new file, a new inode.
func (r *RootFS) Copy(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		dst := filepath.Join(r.Dir, p)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(p, dst); err != nil {
			t.Fatalf("copying %s into the container root: %v", p, err)
		}
	}
}

// Path returns where the container's file name (as the container sees
// it) is on the host.
func (r *RootFS) Path(name string) string { return filepath.Join(r.Dir, name) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// libraries returns the files ldd says path loads, the loader included.
func libraries(t testing.TB, path string) []string {
	t.Helper()
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return nil // a static executable
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i, w := range f {
			if strings.HasPrefix(w, "/") && (i == 0 || f[i-1] == "=>") {
				libs = append(libs, w)
			}
		}
	}
	return libs
}

// Container is a running test container.
type Container struct {
	// ID is the container's id, 64 hex digits; PodUID its pod's uid.
	ID, PodUID string
	// Cgroup is the cgroup's path below the cgroup2 mount, CgroupDir its
	// directory.
	Cgroup, CgroupDir string
	// Cmd is the container's first process (unshare, which forks the
	// container's init into the new pid namespace).
	Cmd    *exec.Cmd
	Stdout *harness.Buffer

	t     testing.TB
	mount string
	done  chan struct{}
}

// Start runs argv (a program path inside root, and its arguments) as the
// first process of a new container from root, with stdin (may be nil)
// and its output in Stdout, and returns once the process runs. The
// container is stopped, and its cgroup removed, when the test ends.
func Start(t testing.TB, root *RootFS, stdin io.Reader, argv ...string) *Container {
	t.Helper()
	c := Prepare(t, root, argv...)
	c.Cmd.Stdin = stdin
	c.Cmd.Stdout, c.Cmd.Stderr = c.Stdout, c.Stdout
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting container: %v", err)
	}
	c.Started(t)
	return c
}

// Prepare creates the cgroup of a container running argv from root and
// returns it with its Cmd not started, for a caller that starts it itself
// (on a pseudo-terminal, with pty.Start: then clear Cmd.SysProcAttr, whose
// Setpgid a session leader cannot use) and then calls Started. The
// container is stopped, and its cgroup removed, when the test ends.
func Prepare(t testing.TB, root *RootFS, argv ...string) *Container {
	t.Helper()
	harness.RequirePrivileges(t, "unshare", "chroot")
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "test containers need a cgroup2 hierarchy: %v", err)
	}
	c := &Container{ID: randomHex(t, 32), t: t, mount: mount, done: make(chan struct{}), Stdout: &harness.Buffer{}}
	u := randomHex(t, 16)
	c.PodUID = u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
	c.Cgroup = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
		strings.ReplaceAll(c.PodUID, "-", "_") + ".slice/cri-containerd-" + c.ID + ".scope"
	c.CgroupDir = filepath.Join(mount, c.Cgroup)
	if err := os.MkdirAll(c.CgroupDir, 0o755); err != nil {
		harness.SkipOrFail(t, "creating the container's cgroup: %v", err)
	}
	// The shell moves itself into the cgroup, then becomes unshare:
	// every process of the container is born in it.
	script := `echo $$ > "$1/cgroup.procs" && shift && exec unshare --mount --pid --fork --mount-proc="$1/proc" chroot "$@"`
	c.Cmd = exec.Command("/bin/sh", append([]string{"-c", script, "sh", c.CgroupDir, root.Dir}, argv...)...)
	c.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("output of container %s (%s):\n%s", c.ID[:12], strings.Join(argv, " "), c.Stdout.String())
		}
	})
	return c
}

// Started waits until the container's Cmd, started by the caller, runs
// its first process in the container.
func (c *Container) Started(t testing.TB) {
	t.Helper()
	go func() { _ = c.Cmd.Wait(); close(c.done) }()
	if !harness.Poll(5*time.Second, func() bool { return len(c.Procs()) >= 2 || c.Exited() }) {
		t.Fatalf("container %s did not start:\n%s", c.ID, c.Stdout.String())
	}
}

// Procs returns the pids (host's view) of the container's processes.
func (c *Container) Procs() []int {
	data, err := os.ReadFile(filepath.Join(c.CgroupDir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		var n int
		if _, err := fmt.Sscan(f, &n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Exited reports whether the container's first process has exited.
func (c *Container) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the container's first process to exit and
// reports whether it did.
func (c *Container) Wait(timeout time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Stop kills every process of the container and removes its cgroup (and
// the pod's and QoS slices it created, when empty).
func (c *Container) Stop() {
	if c.Cmd.Process == nil {
		c.removeCgroup()
		return
	}
	_ = syscall.Kill(-c.Cmd.Process.Pid, syscall.SIGKILL)
	_ = os.WriteFile(filepath.Join(c.CgroupDir, "cgroup.kill"), []byte("1"), 0o600)
	for _, pid := range c.Procs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	c.Wait(5 * time.Second)
	harness.Poll(5*time.Second, func() bool { return len(c.Procs()) == 0 })
	c.removeCgroup()
}

// removeCgroup removes the container's cgroup and the slices above it
// that are empty.
func (c *Container) removeCgroup() {
	// Remove the scope, then the slices above it while they are empty
	// (other containers of the test may still use them).
	dir := c.CgroupDir
	for dir != c.mount && strings.HasPrefix(dir, c.mount) {
		if err := os.Remove(dir); err != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
