package opensslmod

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

// libsslSonames are the libssl versions the module supports, as the loader
// names them.
var libsslSonames = []string{"libssl.so.3", "libssl.so.1.1"}

// libDirs are searched for libsslSonames besides the loader's cache.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
	"/usr/local/lib64", "/usr/local/lib", "/usr/local/ssl/lib",
}

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// discoverLibssl finds the libssl files to probe: with a pid filter, those
// the process maps (or its executable when it carries OpenSSL itself);
// otherwise those the loader knows (ldconfig -p) and those in libDirs.
func discoverLibssl(pid uint32) ([]string, error) {
	if pid != 0 {
		return libsslOfProcess(pid)
	}
	var cands []string
	if out, err := ldconfigCache(); err == nil {
		cands = append(cands, parseLdconfig(out)...)
	}
	for _, d := range libDirs {
		for _, n := range libsslSonames {
			cands = append(cands, filepath.Join(d, n))
		}
	}
	var found []string
	var seen []os.FileInfo
	for _, c := range cands {
		st, err := os.Stat(c)
		if err != nil || !st.Mode().IsRegular() || seenFile(seen, st) || !nativeELF(c) {
			continue
		}
		seen = append(seen, st)
		found = append(found, c)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("neither the loader cache (ldconfig -p) nor %s hold %s",
			strings.Join(libDirs, ", "), strings.Join(libsslSonames, " or "))
	}
	return found, nil
}

func seenFile(seen []os.FileInfo, st os.FileInfo) bool {
	for _, s := range seen {
		if os.SameFile(s, st) {
			return true
		}
	}
	return false
}

// ldconfigCache returns the output of `ldconfig -p`.
func ldconfigCache() ([]byte, error) {
	bin := "/sbin/ldconfig"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("ldconfig"); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, "-p").Output()
}

// parseLdconfig returns the paths of the supported libssl sonames in the
// output of `ldconfig -p`, whose lines read
// "\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3".
func parseLdconfig(out []byte) []string {
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !isSoname(name) {
			continue
		}
		if _, path, ok := strings.Cut(rest, "=> "); ok && strings.HasPrefix(path, "/") {
			paths = append(paths, strings.TrimSpace(path))
		}
	}
	return paths
}

func isSoname(name string) bool {
	for _, n := range libsslSonames {
		if name == n {
			return true
		}
	}
	return false
}

// nativeELF reports whether path is an ELF object for the machine this
// plugin runs on (ldconfig also lists the libraries of other multiarch
// architectures).
func nativeELF(path string) bool {
	f, err := elfsym.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	switch runtime.GOARCH {
	case "amd64":
		return f.Machine == elf.EM_X86_64
	case "arm64":
		return f.Machine == elf.EM_AARCH64
	}
	return true
}

// libsslOfProcess returns the libssl files process pid maps, or its
// executable if it maps none but defines SSL_write (OpenSSL linked
// statically). Paths are seen from the process's root: a process in
// another mount namespace (a container) gets /proc/PID/root/... paths.
func libsslOfProcess(pid uint32) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.FormatUint(uint64(pid), 10), "maps"))
	if err != nil {
		return nil, fmt.Errorf("reading the mappings of process %d: %w", pid, err)
	}
	root := processRoot(pid)
	var out []string
	for _, p := range libsslInMaps(data) {
		out = append(out, root+p)
	}
	if len(out) > 0 {
		return out, nil
	}
	exe := filepath.Join(procDir, strconv.FormatUint(uint64(pid), 10), "exe")
	if err := elfsym.CheckSymbol(exe, symWrite); err == nil {
		return []string{exe}, nil
	}
	return nil, fmt.Errorf("process %d maps no libssl.so and its executable does not define %s", pid, symWrite)
}

// processRoot returns "" when process pid sees the same root directory as
// this process, else its /proc/PID/root, to prefix to its paths.
func processRoot(pid uint32) string {
	root := filepath.Join(procDir, strconv.FormatUint(uint64(pid), 10), "root")
	theirs, err1 := os.Stat(root)
	ours, err2 := os.Stat("/")
	if err1 == nil && err2 == nil && os.SameFile(theirs, ours) {
		return ""
	}
	if err1 != nil {
		return ""
	}
	return root
}

// libsslInMaps returns the distinct paths of libssl.so files in the text of
// a /proc/PID/maps file, skipping deleted files.
func libsslInMaps(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname; the path may hold spaces.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, " (deleted)") {
			continue
		}
		base := filepath.Base(path)
		if base != "libssl.so" && !strings.HasPrefix(base, "libssl.so.") {
			continue
		}
		dup := false
		for _, p := range out {
			dup = dup || p == path
		}
		if !dup {
			out = append(out, path)
		}
	}
	return out
}

// tracefsDirs are where cilium/ebpf looks for tracefs.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// ensureTracefs mounts tracefs at /sys/kernel/tracing when neither place
// has it: attaching a tracepoint needs its id from tracefs.
func ensureTracefs(logger hclog.Logger) error {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(filepath.Join(d, "events")); err == nil {
			return nil
		}
	}
	err := unix.Mount("tracefs", tracefsDirs[0], "tracefs", 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting tracefs at %s, which the syscall tracepoints need: %w", tracefsDirs[0], err)
	}
	logger.Info("mounted tracefs: the syscall tracepoints need it", "path", tracefsDirs[0])
	return nil
}
