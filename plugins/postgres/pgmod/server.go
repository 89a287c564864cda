package pgmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// Major releases whose functions and structures kern/postgres_kern.c
// relies on (see doc.go); tested is the one the end-to-end tests ran on.
const (
	minMajor = 12
	maxMajor = 17
)

// server is one server binary to probe.
type server struct {
	path    string
	version string   // as the binary says, "15.18"; "" when not found
	major   int      // the release whose layout is assumed
	symbols []string // the symbol of each of probes
}

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// installed are the usual places of installed servers, in the order
// tried when none runs.
var installed = []string{
	"/usr/lib/postgresql/*/bin/postgres", // Debian, Ubuntu
	"/usr/pgsql-*/bin/postgres",          // PGDG RPMs
	"/usr/local/pgsql/bin/postgres",      // built from source
}

// discoverServers returns the executables of running postgres processes,
// seen from this process's root (/proc/PID/root/... for one in a
// container), one path per file; when none runs, the installed servers.
func discoverServers() ([]string, error) {
	dirs, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var found []string
	for _, d := range dirs {
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procDir, d.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		exe := libfind.Exe(procDir, uint32(pid))
		target, err := os.Readlink(exe)
		if err != nil || strings.HasSuffix(target, " (deleted)") {
			continue
		}
		path := libfind.Root(procDir, uint32(pid)) + target
		if _, err := os.Stat(path); err != nil {
			path = exe // another mount namespace: the link still opens the file
		}
		found = append(found, path)
	}
	if len(found) == 0 {
		for _, pattern := range installed {
			matches, _ := filepath.Glob(pattern)
			sort.Sort(sort.Reverse(sort.StringSlice(matches)))
			found = append(found, matches...)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no postgres process runs and none of %s exists", strings.Join(installed, ", "))
		}
	}
	return libfind.Distinct(found), nil
}

// versionRE matches PG_VERSION_STR: "PostgreSQL 15.18 (Debian ...) on
// x86_64-pc-linux-gnu, compiled by ...", or "PostgreSQL 17beta1 on ...".
var versionRE = regexp.MustCompile(`PostgreSQL (\d+)(\.\d+|beta\d+|rc\d+|devel)?[^\x00]{0,80} on [^\x00]+, compiled by `)

// serverVersion returns the version string of the server in data (its
// read-only data) and its major release, or "" and 0.
func serverVersion(data []byte) (string, int) {
	m := versionRE.FindSubmatch(data)
	if m == nil {
		return "", 0
	}
	major, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return "", 0
	}
	return string(m[1]) + string(m[2]), major
}

// knownMajor parses a server_version override: a known major release.
func knownMajor(v string) (int, error) {
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return 0, fmt.Errorf("%q is not a major release number such as \"15\"", v)
	}
	if major < minMajor || major > maxMajor {
		return 0, fmt.Errorf("PostgreSQL %d: this module knows %d to %d", major, minMajor, maxMajor)
	}
	return major, nil
}

// checkServer checks that path is a PostgreSQL server of a known release
// (or override's), defining every probed function.
func checkServer(path, override string) (server, sdk.Diagnostic, bool) {
	bad := func(attr, summary, format string, args ...any) (server, sdk.Diagnostic, bool) {
		return server{}, sdk.Errorf(attr, summary, format, args...), false
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad(AttrBinary, "Binary not found", "%s does not exist", path)
	case err != nil:
		return bad(AttrBinary, "Binary not readable", "%v", err)
	case !st.Mode().IsRegular():
		return bad(AttrBinary, "Not a binary", "%s is not a regular file", path)
	}
	f, err := elfsym.Open(path)
	if errors.Is(err, elfsym.ErrNotELF) {
		return bad(AttrBinary, "Not an ELF binary", "%s is not an ELF file", path)
	} else if err != nil {
		return bad(AttrBinary, "Binary not readable", "%v", err)
	}
	defer f.Close()
	s := server{path: path}
	for _, p := range probes {
		i := slices.IndexFunc(p.symbols, func(sym string) bool { return elfsym.Defines(f, sym) })
		if i < 0 {
			return bad(AttrBinary, "Not a PostgreSQL server",
				"%s does not define %s: is it the PostgreSQL server binary (postgres)? (symbols are looked up in .symtab and .dynsym)",
				path, strings.Join(p.symbols, " or "))
		}
		s.symbols = append(s.symbols, p.symbols[i])
	}
	if sec := f.Section(".rodata"); sec != nil && sec.Type != elf.SHT_NOBITS {
		if data, err := sec.Data(); err == nil {
			s.version, s.major = serverVersion(data)
		}
	}
	return checkVersion(s, override)
}

// checkVersion accepts s when its major release is known, or override
// (checked by Init) names one.
func checkVersion(s server, override string) (server, sdk.Diagnostic, bool) {
	if override != "" {
		s.major, _ = knownMajor(override)
		return s, sdk.Diagnostic{}, true
	}
	if s.version == "" {
		return server{}, sdk.Errorf(AttrServerVersion, "Unknown PostgreSQL release",
			"%s holds no PostgreSQL version string; if it is a PostgreSQL %d to %d server, set %s to its major release",
			s.path, minMajor, maxMajor, AttrServerVersion), false
	}
	if s.major < minMajor || s.major > maxMajor {
		return server{}, sdk.Errorf(AttrServerVersion, "Unsupported PostgreSQL release",
			"%s is PostgreSQL %s; this module knows %d to %d (tested: 15). To run it as if it were a known release, "+
				"set %s = \"%d\" (at your own risk: the probed functions may have changed)",
			s.path, s.version, minMajor, maxMajor, AttrServerVersion, min(max(s.major, minMajor), maxMajor)), false
	}
	return s, sdk.Diagnostic{}, true
}

// trimNUL returns b up to its first NUL.
func trimNUL(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
