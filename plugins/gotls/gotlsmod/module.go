package gotlsmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/gotls/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/discover"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Name and Version of the module.
const (
	Name    = "gotls"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrMode       = "mode"
	AttrBinary     = "binary"
	AttrKeylogFile = "keylog_file"
	AttrGoVersion  = "go_version"
)

// Modes.
const (
	// ModeText captures the plaintext Go programs write and read.
	ModeText = "text"
	// ModeKeylog writes every TLS session's secrets to keylog_file.
	ModeKeylog = "keylog"
)

// Loss counters of the module, besides those of ebpfbase and tls.h
// (tlsrecord.Counters).
const (
	// CounterReadsUntracked counts Read calls not captured because 65536
	// goroutines were already inside one.
	CounterReadsUntracked = "gotls_reads_untracked"
	// CounterKeysUnreadable counts writeKeyLog calls whose arguments the
	// kernel could not read, or were out of range.
	CounterKeysUnreadable = "tls_keys_unreadable"
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name: AttrMode, Type: sdk.TypeString, Default: ModeText, OneOf: []string{ModeText, ModeKeylog},
		Description: `"text": the plaintext Go programs send and receive over crypto/tls; "keylog": every session's secrets in keylog_file (NSS key log format).`,
	},
	{
		Name: AttrBinary, Type: sdk.TypeString, Default: "",
		Description: "Path of the Go executable to probe. Empty: the pid filter's executable or, without one, every running Go executable linking crypto/tls.",
	},
	{
		Name: AttrKeylogFile, Type: sdk.TypeString, Default: "",
		Description: `Key log file (NSS format, created 0600, appended to) of mode "keylog".`,
	},
	{
		Name: AttrGoVersion, Type: sdk.TypeString, Default: "",
		Description: `Read executables of a Go release the module does not know with this release's offsets ("1.27").`,
	},
}}

// Module captures Go's crypto/tls. Create it with New and serve
// ebpfbase.New(New()); it is the module's ebpfbase.Hooks (with
// ebpfbase.Dispatcher and ebpfbase.Lifecycle). Decode keeps
// per-connection state (gaps) and the keys of sessions not complete yet:
// like every decoder, it is called one record at a time.
type Module struct {
	logger  hclog.Logger
	sink    sdk.Sink
	stamp   ebpfbase.Stamper
	mode    string
	targets []*goBinary
	layout  layout
	dec     tlsrecord.Decoder
	keys    keyCollector
	// Without binary and pid filter: Go programs started later are found
	// by watcher (nodewide.go).
	nodeWide bool
	override *release
	watcher  *discover.Watcher
	inited   bool
	// the cgroup filter, for discovery's exec tracepoint
	cgroupID    uint64
	cgroupLevel uint32
}

// New returns the gotls module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: tlsrecord.Decoder{Lib: LibGo, Fns: fnNames}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Plaintext and TLS keys of Go programs (crypto/tls, Go 1.17+ on x86-64, stripped or not), read at crypto/tls.(*Conn).Write and Read.",
		Schema:      schema,
	}
}

// procDir is /proc; a variable for tests.
var procDir = "/proc"

// Init checks the attributes and finds the executables to probe, reading
// each one's Go release and functions; it loads nothing. Problems are
// sdk.Diagnostics naming the attribute.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	m.logger, m.sink = logger, sink
	m.targets = nil
	cfg := settings.Config.WithDefaults(schema)
	var diags sdk.Diagnostics
	m.mode = cfg.String(AttrMode)
	if m.mode != ModeText && m.mode != ModeKeylog {
		diags = append(diags, sdk.Errorf(AttrMode, "Invalid value", "%q must be %q or %q, not %q", AttrMode, ModeText, ModeKeylog, m.mode))
	}
	keyFile := cfg.String(AttrKeylogFile)
	switch {
	case m.mode == ModeKeylog && keyFile == "":
		diags = append(diags, sdk.Errorf(AttrKeylogFile, "Missing key log file", `mode "keylog" needs %s, the file to write the secrets to`, AttrKeylogFile))
	case m.mode != ModeKeylog && keyFile != "":
		diags = append(diags, sdk.Errorf(AttrKeylogFile, "Attribute not used in this mode", `%q applies to mode "keylog", not %q`, AttrKeylogFile, m.mode))
	case keyFile != "":
		if d, ok := checkOutputPath(AttrKeylogFile, keyFile); !ok {
			diags = append(diags, d)
		}
	}
	var override *release
	if v := cfg.String(AttrGoVersion); v != "" {
		r, ok := parseOverride(v)
		if _, known := layoutFor(r); !ok || !known {
			diags = append(diags, sdk.Errorf(AttrGoVersion, "Unknown Go release", "%q is not a Go release the module knows (%s)", v, knownReleases()))
		} else {
			override = &r
		}
	}
	if diags.HasErrors() {
		return diags
	}
	m.nodeWide = cfg.String(AttrBinary) == "" && settings.Common.PID == 0
	m.cgroupID, m.cgroupLevel = settings.Common.CgroupID, settings.Common.CgroupLevel
	targets, tdiags := m.findTargets(cfg.String(AttrBinary), settings.Common.PID, settings.Common.CgroupPath)
	diags = append(diags, tdiags...)
	if diags.HasErrors() {
		return diags
	}
	lay, d, ok := chooseLayout(targets, override, cfg.String(AttrBinary) != "")
	if !ok {
		return append(diags, d)
	}
	if len(targets) == 0 {
		m.logger.Info("no Go program with crypto/tls runs yet: waiting for one (node-wide discovery)")
	}
	if m.mode == ModeKeylog {
		for _, t := range targets {
			if t.KeyLog.Entry == 0 {
				return append(diags, sdk.Errorf(attrOf(cfg.String(AttrBinary)), "No key log function",
					"%s (%s) has no %s in .gopclntab, where keylog mode reads the secrets", t.Path, t.GoVersion, symKeyLog))
			}
		}
	}
	m.targets, m.layout, m.override = targets, lay, override
	m.inited = true
	m.keys.path = keyFile
	for _, t := range targets {
		m.logger.Debug("Go executable to probe", "path", t.Path, "go", t.GoVersion, "read_returns", len(t.Read.Returns))
	}
	return nil
}

// attrOf is the attribute a target's diagnostic names: binary when it was
// set, else the module block.
func attrOf(binary string) string {
	if binary != "" {
		return AttrBinary
	}
	return ""
}

// findTargets returns the executables to probe: binary, else the pid
// filter's executable, else every running Go executable linking
// crypto/tls (in the cgroup filter's cgroup, when set), which may be
// none: node-wide discovery then waits for one.
func (m *Module) findTargets(binary string, pid uint32, cgroup string) ([]*goBinary, sdk.Diagnostics) {
	switch {
	case binary != "":
		b, err := safeInspect(binary)
		if err != nil {
			return nil, sdk.Diagnostics{targetDiag(AttrBinary, binary, err)}
		}
		return []*goBinary{b}, nil
	case pid != 0:
		exe := libfind.Exe(procDir, pid)
		b, err := safeInspect(exe)
		if err != nil {
			return nil, sdk.Diagnostics{targetDiag("", fmt.Sprintf("the executable of process %d (%s)", pid, exe), err)}
		}
		return []*goBinary{b}, nil
	}
	return runningGoTLS(procDir, cgroup, m.logger), nil
}

// targetDiag is the diagnostic of an executable inspect refused.
func targetDiag(attr, what string, err error) sdk.Diagnostic {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sdk.Errorf(attr, "File not found", "%s does not exist", what)
	case errors.Is(err, ErrNotGo):
		return sdk.Errorf(attr, "Not a Go executable", "%v: the module probes programs built by Go", err)
	case errors.Is(err, ErrNoTLS):
		return sdk.Errorf(attr, "Go executable without crypto/tls", "%v: it makes no TLS connection through Go's crypto/tls", err)
	case errors.Is(err, ErrUnsupported):
		return sdk.Errorf(attr, "Unsupported Go executable", "%v", err)
	}
	return sdk.Errorf(attr, "File not readable", "%s: %v", what, err)
}

// chooseLayout returns the layout of the targets' Go releases (override,
// when set, for releases the table lacks). Every target must have the
// same layout: the probes are loaded once.
func chooseLayout(targets []*goBinary, override *release, configured bool) (layout, sdk.Diagnostic, bool) {
	attr := ""
	if configured {
		attr = AttrBinary
	}
	var chosen *layout
	for _, t := range targets {
		l, ok := layoutFor(t.Release)
		if !ok && override != nil {
			l, ok = layoutFor(*override)
		}
		if !ok {
			return layout{}, sdk.Errorf(attr, "Unknown Go release",
				"%s was built by %s, a release whose structure offsets the module does not know (it knows %s); "+
					"set %s = %q to read it as that release", t.Path, t.GoVersion, knownReleases(), AttrGoVersion,
				strings.TrimPrefix(layouts[len(layouts)-1].to.String(), "go")), false
		}
		if chosen != nil && *chosen != l {
			return layout{}, sdk.Errorf(attr, "Go releases of different layouts",
				"%s (%s) needs other offsets than the executables before it; capture it in a module block of its own", t.Path, t.GoVersion), false
		}
		chosen = &l
	}
	if chosen == nil {
		// No target yet (node-wide, waiting for one): the layout is the
		// one every release the module knows shares, or go_version's.
		if override != nil {
			l, _ := layoutFor(*override)
			return l, sdk.Diagnostic{}, true
		}
		if l, ok := sharedLayout(); ok {
			return l, sdk.Diagnostic{}, true
		}
		return layout{}, sdk.Errorf("", "No Go program to probe",
			"no running process is a Go executable linking crypto/tls, and the releases the module knows (%s) differ in layout; set %s to the release to expect, %s, or the pid filter",
			knownReleases(), AttrGoVersion, AttrBinary), false
	}
	return *chosen, sdk.Diagnostic{}, true
}

// checkOutputPath checks that path's directory exists and that path, if
// it exists, is a regular file.
func checkOutputPath(attr, path string) (sdk.Diagnostic, bool) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	st, err := os.Stat(filepath.Dir(path))
	switch {
	case err != nil:
		return sdk.Errorf(attr, "Directory not found", "the directory of %s: %v", path, err), false
	case !st.IsDir():
		return sdk.Errorf(attr, "Directory not found", "%s is not a directory", filepath.Dir(path)), false
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return sdk.Errorf(attr, "Not a regular file", "%s exists and is not a regular file", path), false
	}
	return sdk.Diagnostic{}, true
}

// Targets returns the executables Start will probe, as Init chose them.
func (m *Module) Targets() []string {
	out := make([]string, len(m.targets))
	for i, t := range m.targets {
		out[i] = t.Path
	}
	return out
}

// Mode returns the mode Init read.
func (m *Module) Mode() string { return m.mode }

// Started opens the key log file in keylog mode (ebpfbase.Lifecycle):
// the probes are attached, nothing is read yet.
func (m *Module) Started(obj *ebpfbase.Object) error {
	if m.mode == ModeKeylog {
		if err := m.keys.open(); err != nil {
			return err
		}
	}
	if m.nodeWide {
		return m.startDiscovery(obj)
	}
	return nil
}

// RunEnded counts the sessions whose secrets never all came, and reports
// the key counters a last time.
func (m *Module) RunEnded() { m.keys.finish(m.sink) }

// Closed releases the Go programs discovery probed and closes the key log
// file.
func (m *Module) Closed() error { return errors.Join(m.stopDiscovery(), m.keys.close()) }

// Names of the programs of kern/gotls_kern.c.
const (
	progWrite    = "uprobe_go_tls_write"
	progRead     = "uprobe_go_tls_read"
	progReadRet  = "uprobe_go_tls_read_ret"
	progClose    = "uprobe_go_tls_close"
	progKeyLog   = "uprobe_go_tls_write_key_log"
	statsMap     = "gotls_stats"
	statUntrack  = 0 // GOTLS_STAT_UNTRACKED
	statKeysLost = 1 // GOTLS_STAT_KEYS_LOST
)

// Spec describes the bytecode and the probes: on every target, in text
// mode Write and Read at entry, each return instruction of Read and Close;
// in keylog mode writeKeyLog. Every probe is a uprobe at a file offset.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if !m.inited {
		return nil, errors.New("describing probes: Init did not succeed")
	}
	var probes []ebpfbase.Probe
	for i, t := range m.targets {
		probes = append(probes, targetProbes(i, t, m.mode)...)
	}
	var data, keys uint32 = 1, 0
	if m.mode == ModeKeylog {
		data, keys = 0, 1
	}
	return &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		ProbesLater:    m.nodeWide, // discovery probes Go programs started later
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		Constants: map[string]any{
			"gotls_capture_data": data,
			"gotls_capture_keys": keys,
			"gotls_conn_data":    m.layout.ConnData,
			"gotls_tcpconn_fd":   m.layout.TCPConnFD,
			"gotls_sysfd":        m.layout.Sysfd,
			"gotls_family":       m.layout.Family,
		},
		Counters: append(tlsrecord.Counters(),
			ebpfbase.CounterMap{Name: CounterReadsUntracked, Map: statsMap, Index: statUntrack},
			ebpfbase.CounterMap{Name: CounterKeysUnreadable, Map: statsMap, Index: statKeysLost}),
	}, nil
}

// targetProbes returns the probes of mode on target number i.
func targetProbes(i int, t *goBinary, mode string) []ebpfbase.Probe {
	probe := func(id, prog, sym string, off uint64) ebpfbase.Probe {
		return ebpfbase.Probe{
			ID:      "t" + strconv.Itoa(i) + id,
			Section: "uprobe/" + sectionOf[prog],
			Program: prog,
			Symbol:  sym,
			Binary:  t.Path,
			Offset:  off,
		}
	}
	if mode == ModeKeylog {
		return []ebpfbase.Probe{probe("k", progKeyLog, symKeyLog, t.KeyLog.Entry)}
	}
	probes := []ebpfbase.Probe{
		probe("w", progWrite, symWrite, t.Write.Entry),
		probe("r", progRead, symRead, t.Read.Entry),
	}
	for j, off := range t.Read.Returns {
		probes = append(probes, probe("r"+strconv.Itoa(j), progReadRet, symRead+"+"+strconv.FormatUint(off-t.Read.Entry, 10), off))
	}
	if t.Close.Entry != 0 {
		probes = append(probes, probe("c", progClose, symClose, t.Close.Entry))
	}
	return probes
}

// sectionOf names the section of each program after "uprobe/".
var sectionOf = map[string]string{
	progWrite:   "go_tls_write",
	progRead:    "go_tls_read",
	progReadRet: "go_tls_read_ret",
	progClose:   "go_tls_close",
	progKeyLog:  "go_tls_write_key_log",
}

// Decode decodes a record: plaintext (struct tls_data_event) into a
// tls_data event with tlsrecord.Decoder; a key log line (struct
// gotls_key_event) is collected, and a session's lines, once complete and
// written, become a tls_keys event. It never panics: a short or
// inconsistent record is an error wrapping ebpfbase.ErrShortRecord or
// ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return fmt.Errorf("decoding gotls record: %w", err)
	}
	if h.Kind == kindKey {
		return m.keys.decode(&m.stamp, m.sink, raw, ev)
	}
	_, err = m.dec.Decode(raw, ev)
	return err
}

// Dispatch receives the key records that completed no session, which
// Decode already collected: it drops them (ebpfbase.Dispatcher).
func (m *Module) Dispatch(*sdk.Event) {}
