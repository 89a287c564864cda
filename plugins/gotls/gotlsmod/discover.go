package gotlsmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// safeInspect is inspect, turning a panic of the parsers of debug/elf,
// debug/buildinfo or debug/gosym on a hostile file into an error.
func safeInspect(path string) (b *goBinary, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("reading %s: parser panicked: %v: %w", path, r, ErrUnsupported)
		}
	}()
	return inspect(path)
}

// fileID identifies a file: the same executable run by many processes,
// or seen through several paths, is probed once.
type fileID struct{ dev, ino uint64 }

func idOf(st os.FileInfo) (fileID, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(sys.Dev), sys.Ino}, true
}

// runningGoTLS returns the executables of the running processes under
// proc that are Go executables linking crypto/tls, each file once: at the
// path the process's exe link names when that is the same file from here,
// else as proc/PID/exe (a process of another mount namespace, a deleted
// file). Go executables the module cannot probe are logged and left out;
// so are this plugin and the ecaphost that runs it (its own TLS, an OTLP
// exporter say, would capture itself).
func runningGoTLS(proc, cgroup string, logger hclog.Logger) []*goBinary {
	entries, err := os.ReadDir(proc)
	if err != nil {
		logger.Warn("listing processes", "error", err)
		return nil
	}
	seen := map[fileID]bool{}
	for _, pid := range []int{os.Getpid(), os.Getppid()} {
		if st, err := os.Stat(filepath.Join(proc, strconv.Itoa(pid), "exe")); err == nil {
			if id, ok := idOf(st); ok {
				seen[id] = true
			}
		}
	}
	var out []*goBinary
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if cgroup != "" && !inCgroup(filepath.Join(proc, e.Name(), "cgroup"), cgroup) {
			continue
		}
		exe := filepath.Join(proc, e.Name(), "exe")
		st, err := os.Stat(exe)
		if err != nil || !st.Mode().IsRegular() {
			continue // a kernel thread, or gone
		}
		id, ok := idOf(st)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if target, err := os.Readlink(exe); err == nil {
			if tst, err := os.Stat(target); err == nil && os.SameFile(st, tst) {
				exe = target
			}
		}
		b, err := safeInspect(exe)
		switch {
		case err == nil:
			out = append(out, b)
		case errors.Is(err, ErrUnsupported):
			logger.Warn("leaving out a Go program the module cannot probe", "pid", pid, "exe", exe, "problem", err)
		}
	}
	return out
}

// inCgroup reports whether the /proc/PID/cgroup file at path puts the
// process in the cgroup v2 cgroup or below it.
func inCgroup(path, cgroup string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	cgroup = strings.TrimSuffix(cgroup, "/")
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p == cgroup || strings.HasPrefix(p, cgroup+"/")
		}
	}
	return false
}
