package libfind

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

// Dirs are the library directories Loader searches after the loader's
// cache, for the amd64 and arm64 Debian/Ubuntu layouts, the Red Hat one,
// and /usr/local.
var Dirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
	"/usr/local/lib64", "/usr/local/lib",
}

// Soname returns a matcher of file base names for Mapped and InMaps: it
// accepts each of names and the name followed by a version ("libssl.so"
// accepts libssl.so, libssl.so.3 and libssl.so.1.1, not libssl3.so).
func Soname(names ...string) func(base string) bool {
	return func(base string) bool {
		for _, n := range names {
			if base == n || strings.HasPrefix(base, n+".") {
				return true
			}
		}
		return false
	}
}

// Loader returns the files the loader would give programs asking for one
// of sonames: those its cache lists (ldconfig -p), then those found in
// Dirs and extraDirs, each file once (by inode), regular files of this
// machine's architecture only (the cache also lists other multiarch
// libraries). Nothing found is an empty result, not an error.
func Loader(sonames []string, extraDirs ...string) []string {
	var cands []string
	if out, err := ldconfigCache(); err == nil {
		cands = append(cands, ParseLdconfig(out, sonames)...)
	}
	for _, d := range append(slices.Clone(Dirs), extraDirs...) {
		for _, n := range sonames {
			cands = append(cands, filepath.Join(d, n))
		}
	}
	var found []string
	var seen []os.FileInfo
	for _, c := range cands {
		st, err := os.Stat(c)
		if err != nil || !st.Mode().IsRegular() || seenFile(seen, st) || !NativeELF(c) {
			continue
		}
		seen = append(seen, st)
		found = append(found, c)
	}
	return found
}

func seenFile(seen []os.FileInfo, st os.FileInfo) bool {
	for _, s := range seen {
		if os.SameFile(s, st) {
			return true
		}
	}
	return false
}

// Distinct returns paths without those naming a file an earlier one names
// (the same inode through another path or link); paths that cannot be
// read are kept.
func Distinct(paths []string) []string {
	var out []string
	var seen []os.FileInfo
	for _, p := range paths {
		st, err := os.Stat(p)
		if err == nil {
			if seenFile(seen, st) {
				continue
			}
			seen = append(seen, st)
		}
		out = append(out, p)
	}
	return out
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

// ParseLdconfig returns the paths of sonames in the output of `ldconfig
// -p`, whose lines read
// "\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3", in
// the order listed. Relative paths are left out.
func ParseLdconfig(out []byte, sonames []string) []string {
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(sonames, name) {
			continue
		}
		if _, path, ok := strings.Cut(rest, "=> "); ok && strings.HasPrefix(path, "/") {
			paths = append(paths, strings.TrimSpace(path))
		}
	}
	return paths
}

// NativeELF reports whether path is an ELF object for the machine this
// program runs on.
func NativeELF(path string) bool {
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

// Mapped returns the distinct paths of the files process pid maps whose
// base name match accepts, skipping deleted files, as this process can
// open them: prefixed with /proc/PID/root when the process sees another
// root directory (a container). proc is where procfs is mounted, "/proc"
// but in tests. The error is that of reading the mappings (no such
// process, no permission); a process mapping no such file gets an empty
// result.
func Mapped(proc string, pid uint32, match func(base string) bool) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "maps"))
	if err != nil {
		return nil, fmt.Errorf("reading the mappings of process %d: %w", pid, err)
	}
	root := Root(proc, pid)
	var out []string
	for _, p := range InMaps(data, match) {
		out = append(out, root+p)
	}
	return out, nil
}

// Exe returns the path of process pid's executable: proc/PID/exe, which
// opens the file even in another mount namespace.
func Exe(proc string, pid uint32) string {
	return filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "exe")
}

// Root returns "" when process pid sees the same root directory as this
// process (or its root cannot be read), else proc/PID/root, to prefix to
// the paths it sees.
func Root(proc string, pid uint32) string {
	root := filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "root")
	theirs, err1 := os.Stat(root)
	ours, err2 := os.Stat("/")
	if err1 != nil || (err2 == nil && os.SameFile(theirs, ours)) {
		return ""
	}
	return root
}

// InMaps returns the distinct absolute paths in the text of a
// /proc/PID/maps file whose base name match accepts, in order, skipping
// deleted files.
func InMaps(data []byte, match func(base string) bool) []string {
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
		if match(filepath.Base(path)) && !slices.Contains(out, path) {
			out = append(out, path)
		}
	}
	return out
}
