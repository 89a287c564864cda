package tlsrecord

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// The probes of tls.h tying a session to its socket: a socket's I/O by a
// thread inside a library call is the I/O of that call's session.
var (
	// SockTracepoints are the raw tracepoints used where the kernel has
	// them (Linux 6.3+): they fire only for socket I/O. Programs
	// rtp_<name>, sections raw_tracepoint/<name>.
	SockTracepoints = []string{"sock_send_length", "sock_recv_length"}
	// Syscalls are the fallback: the tracepoints syscalls/sys_enter_<name>
	// (programs tp_sys_enter_<name>), which slow every syscall of every
	// task while attached.
	Syscalls = []string{"read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg"}
)

// SockTracepointPath is where tracefs shows the first of SockTracepoints
// when the kernel has it.
const SockTracepointPath = "/sys/kernel/tracing/events/sock/sock_send_length"

// HaveSockTracepoints reports whether the kernel has SockTracepoints, by
// looking for path (SockTracepointPath but in tests) in tracefs.
func HaveSockTracepoints(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ConnProbes returns new probes of the socket programs tls.h defines: the
// SockTracepoints when sock is set, else the Syscalls tracepoints (which
// need tracefs, which ebpfbase mounts when it is not).
func ConnProbes(sock bool) []ebpfbase.Probe {
	var probes []ebpfbase.Probe
	if sock {
		for _, tp := range SockTracepoints {
			probes = append(probes, ebpfbase.Probe{Section: "raw_tracepoint/" + tp, Program: "rtp_" + tp})
		}
		return probes
	}
	for _, sc := range Syscalls {
		probes = append(probes, ebpfbase.Probe{Section: "tracepoint/syscalls/sys_enter_" + sc, Program: "tp_sys_enter_" + sc})
	}
	return probes
}

// ProbeDef is one probe of a TLS module's object on a traced binary.
type ProbeDef struct {
	Symbol   string // the function probed
	Section  string // e.g. "uprobe/SSL_write"
	Program  string // the eBPF program
	Required bool   // a binary lacking Symbol is not the library
}

// Target is a binary to probe and the probed symbols it defines.
type Target struct {
	Path    string
	Symbols []string
}

// NewTarget returns the target path with the symbols of defs that defined
// reports it defines; missing is the first Required symbol it lacks, in
// which case the binary is not the library and must not be probed.
func NewTarget(path string, defs []ProbeDef, defined func(symbol string) bool) (t Target, missing string) {
	t.Path = path
	for _, p := range defs {
		switch {
		case slices.Contains(t.Symbols, p.Symbol):
		case defined(p.Symbol):
			t.Symbols = append(t.Symbols, p.Symbol)
		case p.Required:
			return Target{}, p.Symbol
		}
	}
	return t, ""
}

// Probes returns the probes of defs on every target that defines their
// symbol, then the socket probes (ConnProbes: the sock tracepoints when
// tracefs shows sockPath, else the syscall tracepoints, which logger is
// told about).
func Probes(targets []Target, defs []ProbeDef, sockPath string, logger hclog.Logger) []ebpfbase.Probe {
	var probes []ebpfbase.Probe
	for i, t := range targets {
		for _, p := range defs {
			if !slices.Contains(t.Symbols, p.Symbol) {
				continue
			}
			probes = append(probes, ebpfbase.Probe{
				ID:      fmt.Sprintf("t%d%s", i, p.Symbol),
				Section: p.Section,
				Program: p.Program,
				Symbol:  p.Symbol,
				Binary:  t.Path,
			})
		}
	}
	sock := HaveSockTracepoints(sockPath)
	if !sock && logger != nil {
		logger.Info("the kernel lacks the sock tracepoints: finding sockets through syscall tracepoints, which slow every syscall", "checked", sockPath)
	}
	return append(probes, ConnProbes(sock)...)
}

// TargetCheck checks a binary a TLS module was told, or found, to probe.
type TargetCheck struct {
	Attr string // the config attribute diagnostics are about
	Kind string // "library" or "binary", in the diagnostics' summaries
	Lib  string // the library's name, e.g. "NSPR": "Not NSPR"
	Hint string // follows "PATH does not define SYMBOL: "
	Defs []ProbeDef
}

// Check checks that path is a regular ELF file defining the Required
// symbols of Defs and returns it as a Target with the probed symbols it
// defines; a problem is a diagnostic on Attr.
func (c TargetCheck) Check(path string) (Target, sdk.Diagnostic, bool) {
	names := make([]string, len(c.Defs))
	for i, p := range c.Defs {
		names[i] = p.Symbol
	}
	defined, err := elfsym.Inspect(path, names)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Target{}, sdk.Errorf(c.Attr, "File not found", "%s does not exist", path), false
	case errors.Is(err, elfsym.ErrNotRegular):
		return Target{}, sdk.Errorf(c.Attr, "Not a "+c.Kind, "%s is not a regular file", path), false
	case errors.Is(err, elfsym.ErrNotELF):
		return Target{}, sdk.Errorf(c.Attr, "Not an ELF "+c.Kind, "%s is not an ELF file", path), false
	case err != nil:
		return Target{}, sdk.Errorf(c.Attr, "File not readable", "%v", err), false
	}
	t, missing := NewTarget(path, c.Defs, func(s string) bool { return defined[s] })
	if missing != "" {
		return Target{}, sdk.Errorf(c.Attr, "Not "+c.Lib,
			"%s does not define %s: %s (symbols are looked up in .symtab and .dynsym)", path, missing, c.Hint), false
	}
	return t, sdk.Diagnostic{}, true
}

// Distinct drops a target whose file another one before it already is
// (libfind.Distinct): the same file probed twice would be captured twice.
func Distinct(ts []Target) []Target {
	keep := libfind.Distinct(Paths(ts))
	var out []Target
	for _, t := range ts {
		if len(keep) > 0 && keep[0] == t.Path {
			out = append(out, t)
			keep = keep[1:]
		}
	}
	return out
}

// Paths returns the targets' paths.
func Paths(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Path
	}
	return out
}
