package mysqldmod

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// serverNames are the executable names of the servers the module looks for
// among running processes.
var serverNames = []string{"mariadbd", "mysqld"}

// defaultPaths are tried, in order, when no server runs: where Debian,
// Red Hat and the upstream packages install it.
var defaultPaths = []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/libexec/mariadbd", "/usr/libexec/mysqld", "/usr/local/mysql/bin/mysqld"}

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// Symbols of the probed functions, by the start of their mangled names:
// the parameters after the first four changed between releases
// (dispatch_command(enum_server_command, THD*, char*, uint, bool, bool) up
// to 10.5, without the last bool from 10.6).
const (
	dispatchMariaDB = "_Z16dispatch_command19enum_server_commandP3THDPcj"
	// dispatchMySQL is MySQL 5.7 and 8.x's dispatch_command(THD*, const
	// COM_DATA*, enum_server_command), recognized to say it is not MariaDB.
	dispatchMySQL   = "_Z16dispatch_commandP3THDPK8COM_DATA19enum_server_command"
	executeLoop     = "_ZN18Prepared_statement12execute_loopE"
	executeBulkLoop = "_ZN18Prepared_statement17execute_bulk_loopE"
)

// server is the binary to probe, as Init found it.
type server struct {
	path      string // as given or found
	version   serverVersion
	dispatch  string // the mangled dispatch_command
	execLoops []string
	missing   []string // why optional members stay unread
}

// serverVersion is the version a server binary carries.
type serverVersion struct {
	text  string // as found, e.g. "10.11.19-MariaDB"
	major int
	minor int
	patch int
	maria bool
}

func (v serverVersion) String() string {
	if v.text == "" {
		return "unknown"
	}
	return v.text
}

// mariaVersion matches MariaDB's MYSQL_SERVER_VERSION ("10.11.19-MariaDB").
var mariaVersion = regexp.MustCompile(`\b(\d{1,2})\.(\d{1,2})\.(\d{1,3})-MariaDB`)

// mysqlVersion matches MySQL's version next to its name in the binary's
// strings ("8.0.36" alone is too common): MySQL keeps "MySQL Community
// Server - GPL" and the like beside the number; a plain number is taken
// only when nothing better is found.
var mysqlVersion = regexp.MustCompile(`\b([58])\.(\d{1,2})\.(\d{1,3})(?:-[0-9a-z.]+)?\x00`)

// errNoVersion is wrapped when a binary carries no server version.
var errNoVersion = errors.New("no MariaDB or MySQL version found")

// readVersion reads the server version from the .rodata of path.
func readVersion(path string) (serverVersion, error) {
	data, err := rodata(path)
	if err != nil {
		return serverVersion{}, err
	}
	if m := mariaVersion.FindSubmatch(data); m != nil {
		return serverVersion{text: string(m[0]), major: atoi(m[1]), minor: atoi(m[2]), patch: atoi(m[3]), maria: true}, nil
	}
	if m := mysqlVersion.FindSubmatch(data); m != nil {
		return serverVersion{text: "MySQL " + strings.TrimSuffix(string(m[0]), "\x00"), major: atoi(m[1]), minor: atoi(m[2]), patch: atoi(m[3])}, nil
	}
	return serverVersion{}, fmt.Errorf("%s: %w", path, errNoVersion)
}

func atoi(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }

// rodata returns the .rodata section of the ELF file path.
func rodata(path string) ([]byte, error) {
	f, err := elfsym.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".rodata")
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%s has no .rodata: %w", path, errNoVersion)
	}
	data, err := io.ReadAll(io.LimitReader(s.Open(), 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading .rodata of %s: %w", path, err)
	}
	return data, nil
}

// knownVersion reports whether the probes know how to read release
// major.minor of MariaDB: 10.x and 11.x, whose dispatch_command,
// Diagnostics_area and plugin accessors have the shape this module reads.
func knownVersion(major int) bool { return major == 10 || major == 11 }

// parseServerVersion parses the server_version attribute: "10.11" or
// "10.11.19", a MariaDB release.
func parseServerVersion(s string) (serverVersion, error) {
	parts := strings.Split(strings.TrimSuffix(s, "-MariaDB"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return serverVersion{}, fmt.Errorf("%q is not a MariaDB release such as \"10.11\" or \"10.11.19\"", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return serverVersion{}, fmt.Errorf("%q is not a MariaDB release such as \"10.11\" or \"10.11.19\"", s)
		}
		n[i] = v
	}
	return serverVersion{text: s + " (server_version)", major: n[0], minor: n[1], patch: n[2], maria: true}, nil
}

// symbolsWithPrefix returns the defined function symbols of path whose
// names start with prefix, from .symtab and .dynsym, each once.
func symbolsWithPrefix(path, prefix string) ([]string, error) {
	f, err := elfsym.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if !strings.HasPrefix(s.Name, prefix) || s.Section == elf.SHN_UNDEF || s.Value == 0 ||
				elf.ST_TYPE(s.Info) != elf.STT_FUNC {
				continue
			}
			if !containsString(out, s.Name) {
				out = append(out, s.Name)
			}
		}
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// runningServers returns the executables of the running processes named
// like a server (mariadbd, mysqld), each file once, as this process can
// open them: the path the process was started from when it names the same
// file, else /proc/PID/exe (a server in a container, or a deleted file).
func runningServers() ([]string, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if p, ok := serverExe(uint32(pid)); ok {
			out = append(out, p)
		}
	}
	return libfind.Distinct(out), nil
}

// serverExe returns the executable of process pid when it is named like a
// server.
func serverExe(pid uint32) (string, bool) {
	exe := libfind.Exe(procDir, pid)
	target, err := os.Readlink(exe)
	if err != nil {
		return "", false
	}
	base := filepath.Base(strings.TrimSuffix(target, " (deleted)"))
	if !containsString(serverNames, base) {
		return "", false
	}
	return exePath(exe, libfind.Root(procDir, pid)+target), true
}

// exePath returns path when it names the same file as exe (/proc/PID/exe),
// else exe.
func exePath(exe, path string) string {
	a, err1 := os.Stat(exe)
	b, err2 := os.Stat(path)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return path
	}
	return exe
}

// findServer returns the server binary to probe when binary is not set:
// that of process pid (the pid filter), else that of the running servers,
// else the first of defaultPaths that exists. Several different running
// binaries are an error: one object has one layout.
func findServer(pid uint32) (string, error) {
	if pid != 0 {
		exe := libfind.Exe(procDir, pid)
		target, err := os.Readlink(exe)
		if err != nil {
			return "", fmt.Errorf("reading the executable of process %d (the pid filter): %w", pid, err)
		}
		return exePath(exe, libfind.Root(procDir, pid)+target), nil
	}
	running, err := runningServers()
	if err != nil {
		return "", err
	}
	switch len(running) {
	case 1:
		return running[0], nil
	case 0:
		for _, p := range defaultPaths {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", fmt.Errorf("no %s process runs and none of %s exists", strings.Join(serverNames, " or "), strings.Join(defaultPaths, ", "))
	}
	return "", fmt.Errorf("several server binaries run (%s): name one", strings.Join(running, ", "))
}
