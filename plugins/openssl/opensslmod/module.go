package opensslmod

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	manager "github.com/gojue/ebpfmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/openssl/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Name and Version of the module.
const (
	Name    = "openssl"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrMode   = "mode"
	AttrLibssl = "libssl"
	AttrBinary = "binary"
)

// Values of the mode attribute.
const (
	// ModeText captures the plaintext of every call as tls_data events.
	ModeText = "text"
)

// modes are the values mode may take, in the order the schema lists them.
// A new mode adds its name here and its case to Init and Spec.
var modes = []string{ModeText, ModeKeylog, ModePcap}

// Loss counters of the module, beside those of ebpfbase.
const (
	// CounterTruncated counts calls that moved more than the kernel sends
	// of one call (16 MiB); their events end with the field truncated.
	CounterTruncated = tlsrecord.CounterTruncated
	// CounterFault counts chunks the kernel could not read from the
	// process's buffer.
	CounterFault = tlsrecord.CounterFault
	// CounterTooDeep counts calls not captured because the thread was
	// already inside 4 nested TLS calls.
	CounterTooDeep = tlsrecord.CounterTooDeep
)

var schema = sdk.Schema{Attributes: append([]sdk.Attribute{
	{
		Name:    AttrMode,
		Type:    sdk.TypeString,
		Default: ModeText,
		OneOf:   modes,
		Description: `What to capture: "text", the plaintext of every SSL_read/SSL_write, as tls_data events; ` +
			`"keylog", every TLS session's secrets, to keylog_file; "pcap", the packets of ifname with the secrets, to pcap_file.`,
	},
	{
		Name:    AttrLibssl,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of the libssl.so to probe. Empty: every libssl the pid filter's process maps " +
			"or, without a pid filter, every libssl.so.3 and libssl.so.1.1 the loader knows (unless binary is set).",
	},
	{
		Name:    AttrBinary,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of a program carrying its own OpenSSL (linked statically, e.g. node); " +
			"probed instead of the libssl found, or besides the libssl set.",
	},
}, keyAttributes...)}

// Symbols of the OpenSSL API the probes attach to.
const (
	symWrite     = "SSL_write"
	symRead      = "SSL_read"
	symWriteEx   = "SSL_write_ex"
	symReadEx    = "SSL_read_ex"
	symSetFD     = "SSL_set_fd"
	symSetRFD    = "SSL_set_rfd"
	symSetWFD    = "SSL_set_wfd"
	symFree      = "SSL_free"
	symHandshake = "SSL_do_handshake"
)

// probeDef is one probe of kern/openssl_kern.c on a traced binary.
type probeDef struct {
	symbol   string
	section  string
	program  string
	required bool // a binary lacking it is not OpenSSL
	// perSlot: the key modes attach program + slotSuffix(slot) of the
	// binary's layout slot (an entry program recording the slot).
	perSlot bool
	// keys: attached in the key modes only.
	keys bool
}

var probeDefs = []probeDef{
	{symWrite, "uprobe/SSL_write", "uprobe_ssl_write", true, true, false},
	{symWrite, "uretprobe/SSL_write", "uretprobe_ssl_write", true, false, false},
	{symRead, "uprobe/SSL_read", "uprobe_ssl_read", true, true, false},
	{symRead, "uretprobe/SSL_read", "uretprobe_ssl_read", true, false, false},
	{symWriteEx, "uprobe/SSL_write_ex", "uprobe_ssl_write_ex", false, true, false},
	{symWriteEx, "uretprobe/SSL_write_ex", "uretprobe_ssl_write_ex", false, false, false},
	{symReadEx, "uprobe/SSL_read_ex", "uprobe_ssl_read_ex", false, true, false},
	{symReadEx, "uretprobe/SSL_read_ex", "uretprobe_ssl_read_ex", false, false, false},
	{symSetFD, "uprobe/SSL_set_fd", "uprobe_ssl_set_fd", false, false, false},
	{symSetRFD, "uprobe/SSL_set_fd", "uprobe_ssl_set_fd", false, false, false},
	{symSetWFD, "uprobe/SSL_set_fd", "uprobe_ssl_set_fd", false, false, false},
	{symFree, "uprobe/SSL_free", "uprobe_ssl_free", false, false, false},
	{symHandshake, "uprobe/SSL_do_handshake", "uprobe_ssl_do_handshake", false, true, true},
	{symHandshake, "uretprobe/SSL_do_handshake", "uretprobe_ssl_do_handshake", false, false, true},
}

// sockTracepoints tie a session to its socket where the kernel has them
// (Linux 6.3+): they fire only for socket I/O. syscalls are the fallback:
// their tracepoints (syscalls/sys_enter_*) slow every syscall of every
// task while attached. See kern/include/tls.h and tlsrecord.ConnProbes.
var (
	sockTracepoints = tlsrecord.SockTracepoints
	syscalls        = tlsrecord.Syscalls
)

// sockTracepointPath tells whether the kernel has the sock tracepoints.
var sockTracepointPath = tlsrecord.SockTracepointPath

// target is a binary the probes attach to and the probed symbols it defines.
type target struct {
	path    string
	symbols []string
}

// Module captures the plaintext of OpenSSL connections. Create it with
// New. Besides what ebpfbase.Module says, Decode keeps per-session state
// to mark gaps: like every decoder, it is called only from Run's goroutine.
type Module struct {
	ebpfbase.Module

	mode    string
	targets []target
	dec     tlsrecord.Decoder // Decode's, with the gap tracker
	keys    keyMode           // the key modes' settings and files
}

// New returns the openssl module.
func New() *Module {
	m := &Module{}
	m.SetChild(m)
	m.dec = newDecoder(m)
	return m
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Plaintext, secrets (NSS key log) or decryptable pcapng of TLS connections made with OpenSSL 1.1.1 and 3.x (libssl, or a binary linking it statically).",
		Schema:      schema,
	}
}

// Init checks mode, libssl and binary, and finds the libssl to probe when
// libssl is empty; in the key modes it also checks their attributes and
// finds each binary's OpenSSL layout (see doc.go). It loads nothing and
// creates no file. Problems are sdk.Diagnostics naming the attribute.
func (m *Module) Init(ctx context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	cfg := settings.Config.WithDefaults(schema)
	mode := cfg.String(AttrMode)
	if kib, ok := defaultBufferKiB[mode]; ok && settings.Common.BufferKiB == 0 {
		settings.Common.BufferKiB = kib
	}
	if err := m.Module.Init(ctx, logger, settings, sink); err != nil {
		return err
	}
	m.targets = nil
	var diags sdk.Diagnostics
	if !slices.Contains(modes, mode) {
		diags = append(diags, sdk.Errorf(AttrMode, "Invalid value", "%q must be one of %s, not %q", AttrMode, strings.Join(modes, ", "), mode))
	}
	libssl, binary := cfg.String(AttrLibssl), cfg.String(AttrBinary)
	var targets []target
	configured := map[string]string{}
	if libssl != "" {
		configured[libssl] = AttrLibssl
	}
	if binary != "" {
		configured[binary] = AttrBinary
	}
	if binary != "" {
		t, d, ok := checkTarget(AttrBinary, binary)
		if !ok {
			diags = append(diags, d)
		}
		targets = append(targets, t)
	}
	switch {
	case libssl != "":
		t, d, ok := checkTarget(AttrLibssl, libssl)
		if !ok {
			diags = append(diags, d)
		}
		targets = append(targets, t)
	case binary == "":
		found, err := discoverLibssl(settings.Common.PID)
		if err != nil {
			diags = append(diags, sdk.Errorf(AttrLibssl, "libssl not found", "%v; set %s to the libssl.so to probe, or %s to a program carrying its own OpenSSL",
				err, AttrLibssl, AttrBinary))
		}
		for _, path := range found {
			t, d, ok := checkTarget(AttrLibssl, path)
			if !ok {
				m.Logger().Warn("skipping a libssl found", "path", path, "problem", d.Detail)
				continue
			}
			targets = append(targets, t)
		}
		if err == nil && len(targets) == 0 {
			diags = append(diags, sdk.Errorf(AttrLibssl, "libssl not found", "no libssl found defines %s; set %s", symWrite, AttrLibssl))
		}
	}
	if diags.HasErrors() {
		return diags
	}
	targets, diags = m.keys.initKeys(mode, cfg, settings.Common.PID, dedupeTargets(targets), configured, m.Logger())
	if diags.HasErrors() {
		return diags
	}
	m.mode, m.targets = mode, targets
	for _, t := range m.targets {
		m.Logger().Debug("binary to probe", "path", t.path, "symbols", strings.Join(t.symbols, ","))
	}
	return nil
}

// defaultBufferKiB sizes the kernel buffers of a mode when buffer_kib is
// not set: the key modes send a record per handshake, not the plaintext
// (1 MiB ring); pcap mode sends packets, 64 KiB and more each on loopback,
// through per-CPU perf buffers (2 MiB each).
var defaultBufferKiB = map[string]uint32{ModeKeylog: 1 << 10, ModePcap: 2 << 10}

// checkTarget checks that path is a regular ELF file defining SSL_write
// and SSL_read, and lists the probed symbols it defines.
func checkTarget(attr, path string) (target, sdk.Diagnostic, bool) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return target{}, sdk.Errorf(attr, "File not found", "%s does not exist", path), false
	case err != nil:
		return target{}, sdk.Errorf(attr, "File not readable", "%v", err), false
	case !st.Mode().IsRegular():
		return target{}, sdk.Errorf(attr, "Not a binary", "%s is not a regular file", path), false
	}
	f, err := elfsym.Open(path)
	switch {
	case errors.Is(err, elfsym.ErrNotELF):
		return target{}, sdk.Errorf(attr, "Not an ELF binary", "%s is not an ELF file", path), false
	case err != nil:
		return target{}, sdk.Errorf(attr, "File not readable", "%v", err), false
	}
	defer f.Close()
	defined := definedFuncs(f)
	t := target{path: path}
	for _, p := range probeDefs {
		if defined[p.symbol] {
			if !slices.Contains(t.symbols, p.symbol) {
				t.symbols = append(t.symbols, p.symbol)
			}
			continue
		}
		if p.required {
			return target{}, sdk.Errorf(attr, "Not OpenSSL",
				"%s does not define %s: is it libssl, or a program linking OpenSSL statically? (symbols are looked up in .symtab and .dynsym)",
				path, p.symbol), false
		}
	}
	return t, sdk.Diagnostic{}, true
}

// definedFuncs returns which probed symbols f defines as functions
// (elfsym.DefinedFuncs).
func definedFuncs(f *elf.File) map[string]bool {
	names := make([]string, len(probeDefs))
	for i, p := range probeDefs {
		names[i] = p.symbol
	}
	return elfsym.DefinedFuncs(f, names)
}

// dedupeTargets drops a target whose file another one already is (the
// same inode reached by two paths would be probed, and captured, twice).
func dedupeTargets(ts []target) []target {
	var out []target
	var seen []os.FileInfo
	for _, t := range ts {
		st, err := os.Stat(t.path)
		dup := false
		for _, s := range seen {
			if err == nil && os.SameFile(s, st) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if err == nil {
			seen = append(seen, st)
		}
		out = append(out, t)
	}
	return out
}

// Targets returns the paths Start will probe, as Init chose them.
func (m *Module) Targets() []string {
	out := make([]string, len(m.targets))
	for i, t := range m.targets {
		out[i] = t.path
	}
	return out
}

// Start mounts tracefs when it is not (the syscall tracepoints need it),
// then loads and attaches as ebpfbase.Module.Start does.
func (m *Module) Start() error {
	if err := ensureTracefs(m.Logger()); err != nil {
		return err
	}
	if m.mode == ModeText || m.mode == "" {
		return m.Module.Start()
	}
	if err := m.keys.open(m.mode, m.Sink(), m.Logger()); err != nil {
		return err
	}
	if err := m.Module.Start(); err != nil {
		_ = m.keys.close()
		return err
	}
	if m.mode == ModePcap && m.keys.tcx {
		if err := m.keys.attachTCX(m.Manager()); err != nil {
			_ = m.Module.Close()
			_ = m.keys.close()
			return err
		}
	}
	m.keys.start(&m.Module)
	return nil
}

// Probes lists the probes attached (sdk.ProbeLister), with the tcx links
// of pcap mode.
func (m *Module) Probes() []sdk.ProbeInfo {
	return append(m.Module.Probes(), m.keys.tcxProbes()...)
}

// Run reads events until Stop (ebpfbase.Module.Run); in the key modes it
// then writes the packets whose last samples never came and reports the
// counters a last time.
func (m *Module) Run() error {
	err := m.Module.Run()
	if m.keyMode() {
		m.keys.finish()
	}
	return err
}

// Close detaches every probe, then writes what the key modes hold and
// closes their files.
func (m *Module) Close() error {
	m.keys.detachTCX()
	err := m.Module.Close()
	return errors.Join(err, m.keys.close())
}

// Dispatcher receives the packets of pcap mode, which Decode already
// wrote: it drops them.
func (m *Module) Dispatcher(ev *sdk.Event) {
	if ev.Kind == kindPacket {
		return
	}
	m.Module.Dispatcher(ev)
}

// Spec describes the bytecode and the probes: on every target each probed
// symbol it defines, and the syscall tracepoints once.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if len(m.targets) == 0 {
		return nil, errors.New("describing probes: Init did not succeed")
	}
	keys := m.keyMode()
	if keys && len(m.targets) > maxLayouts {
		return nil, fmt.Errorf("describing probes: %d binaries, the key modes probe at most %d", len(m.targets), maxLayouts)
	}
	var probes []*manager.Probe
	for i, t := range m.targets {
		for _, p := range probeDefs {
			if !slices.Contains(t.symbols, p.symbol) || (p.keys && !keys) {
				continue
			}
			prog := p.program
			if keys && p.perSlot {
				prog += slotSuffix(i)
			}
			probes = append(probes, &manager.Probe{
				UID:              fmt.Sprintf("t%d%s", i, p.symbol),
				Section:          p.section,
				EbpfFuncName:     prog,
				AttachToFuncName: p.symbol,
				BinaryPath:       t.path,
			})
		}
	}
	if m.mode == ModePcap {
		m.keys.tcx = haveTCX()
		if !m.keys.tcx {
			m.Logger().Info("the kernel lacks tcx: attaching the packet capture to a clsact qdisc, which is removed at the end, with any other filter on it",
				"ifname", m.keys.iface.name)
			probes = append(probes, m.keys.tcProbes()...)
		}
	}
	sock := tlsrecord.HaveSockTracepoints(sockTracepointPath)
	if !sock {
		m.Logger().Info("the kernel lacks the sock tracepoints: finding sockets through syscall tracepoints, which slow every syscall", "checked", sockTracepointPath)
	}
	probes = append(probes, tlsrecord.ConnProbes(sock)...)
	spec := &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		Counters:       tlsrecord.Counters(),
	}
	if keys {
		spec.Constants = m.keys.constants(m.mode)
		spec.Counters = append(spec.Counters, m.keys.counters(m.mode)...)
	}
	if m.mode == ModePcap {
		spec.EventMaps = append(spec.EventMaps, pcapEventsMap)
	}
	return spec, nil
}

// keyMode reports whether the module captures keys (keylog and pcap modes)
// rather than plaintext.
func (m *Module) keyMode() bool { return m.mode == ModeKeylog || m.mode == ModePcap }
