package opensslmod

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/openssl/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
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
	tlsrecord.MaxDataAttribute,
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
	symNew       = "SSL_new"
)

// probeDef is one probe of kern/openssl_kern.c on a traced binary.
type probeDef struct {
	tlsrecord.ProbeDef // Required: a binary lacking it is not OpenSSL
	// perSlot: the key modes attach program + slotSuffix(slot) of the
	// binary's layout slot (an entry program recording the slot).
	perSlot bool
	// keys: attached in the key modes, and in text mode when writes are
	// captured at entry (the handshake's frame ties a session to its
	// socket, as the write's frame did).
	keys bool
	// writeReturn: the return probe of a write, not attached when writes
	// are captured at entry (writeAtEntry).
	writeReturn bool
	// data: text mode only. The key modes read secrets once per session
	// and attach their own probes on these calls only while a session
	// needs them (fallback.go).
	data bool
	// keysOnly: the key modes only.
	keysOnly bool
}

var probeDefs = []probeDef{
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symWrite, Section: "uprobe/SSL_write", Program: "uprobe_ssl_write", Required: true}, perSlot: true, data: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symWrite, Section: "uretprobe/SSL_write", Program: "uretprobe_ssl_write", Required: true}, data: true, writeReturn: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symRead, Section: "uprobe/SSL_read", Program: "uprobe_ssl_read", Required: true}, perSlot: true, data: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symRead, Section: "uretprobe/SSL_read", Program: "uretprobe_ssl_read", Required: true}, data: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symWriteEx, Section: "uprobe/SSL_write_ex", Program: "uprobe_ssl_write_ex", Required: false}, perSlot: true, data: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symWriteEx, Section: "uretprobe/SSL_write_ex", Program: "uretprobe_ssl_write_ex", Required: false}, data: true, writeReturn: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symReadEx, Section: "uprobe/SSL_read_ex", Program: "uprobe_ssl_read_ex", Required: false}, perSlot: true, data: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symReadEx, Section: "uretprobe/SSL_read_ex", Program: "uretprobe_ssl_read_ex", Required: false}, data: true},
	// The first probe of the key modes: node-wide discovery takes a
	// file defining it for one of the kind.
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symHandshake, Section: "uprobe/SSL_do_handshake", Program: "uprobe_ssl_do_handshake", Required: false}, perSlot: true, keys: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symHandshake, Section: "uretprobe/SSL_do_handshake", Program: "uretprobe_ssl_do_handshake", Required: false}, keys: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symNew, Section: "uretprobe/SSL_new", Program: "uretprobe_ssl_new", Required: false}, keysOnly: true},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symSetFD, Section: "uprobe/SSL_set_fd", Program: "uprobe_ssl_set_fd", Required: false}},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symSetRFD, Section: "uprobe/SSL_set_fd", Program: "uprobe_ssl_set_fd", Required: false}},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symSetWFD, Section: "uprobe/SSL_set_fd", Program: "uprobe_ssl_set_fd", Required: false}},
	{ProbeDef: tlsrecord.ProbeDef{Symbol: symFree, Section: "uprobe/SSL_free", Program: "uprobe_ssl_free", Required: false}, perSlot: true},
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
type target = tlsrecord.Target

// Module captures the plaintext of OpenSSL connections. Create it with
// New and serve ebpfbase.New(New()); it is the module's ebpfbase.Hooks,
// with a Lifecycle for the files and links of the key modes. Decode keeps
// per-session state to mark gaps: like every decoder, it is called only
// from Run's goroutine.
type Module struct {
	logger  hclog.Logger
	sink    sdk.Sink
	mode    string
	targets []target
	named   bool              // libssl or binary set: probe those alone
	maxData uint32            // max_data: bytes of a call copied, 0: all
	dec     tlsrecord.Decoder // Decode's, with the gap tracker
	keys    keyMode           // the key modes' settings and files
}

// New returns the openssl module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: tlsrecord.Decoder{Lib: LibOpenSSL, Fns: fnNames}}
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
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	m.logger, m.sink = logger, sink
	cfg := settings.Config.WithDefaults(schema)
	mode := cfg.String(AttrMode)
	m.targets = nil
	var diags sdk.Diagnostics
	if !slices.Contains(modes, mode) {
		diags = append(diags, sdk.Errorf(AttrMode, "Invalid value", "%q must be one of %s, not %q", AttrMode, strings.Join(modes, ", "), mode))
	}
	maxData, d, ok := tlsrecord.MaxData(cfg)
	if !ok {
		diags = append(diags, d)
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
				m.logger.Warn("skipping a libssl found", "path", path, "problem", d.Detail)
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
	targets, diags = m.keys.initKeys(mode, cfg, settings.Common.PID, tlsrecord.Distinct(targets), configured, m.logger)
	if diags.HasErrors() {
		return diags
	}
	m.mode, m.targets, m.named, m.maxData = mode, targets, libssl != "" || binary != "", maxData
	for _, t := range m.targets {
		m.logger.Debug("binary to probe", "path", t.Path, "symbols", strings.Join(t.Symbols, ","))
	}
	return nil
}

// defaultBufferKiB sizes the kernel buffers of a mode when buffer_kib is
// not set: the key modes send a record per handshake, not the plaintext
// (1 MiB ring); pcap mode sends packets, up to 64 KiB each on loopback,
// through a 16 MiB ring (as much as tcpdump -B 16384), in which a 2 MiB
// ring lost packets at 64 KiB under load (make bench, 2026-12-04).
var defaultBufferKiB = map[string]uint32{ModeKeylog: 1 << 10, ModePcap: 16 << 10}

// checkTarget checks that path is a regular ELF file defining SSL_write
// and SSL_read, and lists the probed symbols it defines.
func checkTarget(attr, path string) (target, sdk.Diagnostic, bool) {
	return tlsrecord.TargetCheck{
		Attr: attr, Kind: "binary", Lib: "OpenSSL", Defs: tlsProbeDefs,
		Hint: "is it libssl, or a program linking OpenSSL statically?",
	}.Check(path)
}

// tlsProbeDefs are the probeDefs as tlsrecord sees them.
var tlsProbeDefs = func() []tlsrecord.ProbeDef {
	out := make([]tlsrecord.ProbeDef, len(probeDefs))
	for i, p := range probeDefs {
		out[i] = p.ProbeDef
	}
	return out
}()

// Started opens the files of the key modes and, in pcap mode, attaches
// the tcx links (ebpfbase.Lifecycle): once every probe is attached, before
// Run reads a record.
func (m *Module) Started(obj *ebpfbase.Object) error {
	if !m.keyMode() {
		return nil
	}
	if err := m.keys.open(m.mode, m.sink, m.logger); err != nil {
		return err
	}
	if err := m.keys.startFallback(obj, m.targets, m.logger); err != nil {
		_ = m.keys.close()
		return err
	}
	if m.mode == ModePcap && m.keys.tcx {
		if err := m.keys.attachTCX(obj); err != nil {
			return err
		}
	}
	m.keys.start()
	return nil
}

// Probes lists the tcx links of pcap mode and the key modes' fallback
// probes while attached (sdk.ProbeLister), which ebpfbase lists after its
// probes.
func (m *Module) Probes() []sdk.ProbeInfo {
	return append(m.keys.tcxProbes(), m.keys.fallback.listProbes()...)
}

// RunEnded, in the key modes, ends the fallback (its loop no longer runs
// while the base detaches the probes and closes the maps), writes the
// packets whose last samples never came and reports the counters a last
// time.
func (m *Module) RunEnded() {
	if m.keyMode() {
		m.keys.endFallback()
		m.keys.finish()
	}
}

// Closed ends the fallback if RunEnded did not, detaches the tcx links,
// then writes what the key modes hold and closes their files.
func (m *Module) Closed() error {
	m.keys.closeFallback()
	m.keys.detachTCX()
	return m.keys.close()
}

// Dispatch receives the packets of pcap mode, which Decode already wrote:
// it drops them. Nothing else is routed to the module.
func (m *Module) Dispatch(*sdk.Event) {}

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
	sock := tlsrecord.HaveSockTracepoints(sockTracepointPath)
	if !sock {
		m.logger.Info("the kernel lacks the sock tracepoints: finding sockets through syscall tracepoints, which slow every syscall", "checked", sockTracepointPath)
	}
	atEntry := writeAtEntry(keys, sock)
	var probes []ebpfbase.Probe
	for i, t := range m.targets {
		for _, p := range probeDefs {
			if !slices.Contains(t.Symbols, p.Symbol) || (p.keys && !keys && !atEntry) || (p.writeReturn && atEntry) ||
				(p.data && keys) || (p.keysOnly && !keys) {
				continue
			}
			prog := p.Program
			if keys && p.perSlot {
				prog += slotSuffix(i)
			}
			probes = append(probes, ebpfbase.Probe{
				ID:      fmt.Sprintf("t%d%s", i, p.Symbol),
				Section: p.Section,
				Program: prog,
				Symbol:  p.Symbol,
				Binary:  t.Path,
			})
		}
	}
	if m.mode == ModePcap {
		m.keys.tcx = haveTCX()
		if !m.keys.tcx {
			m.logger.Info("the kernel lacks tcx: attaching the packet capture to a clsact qdisc, which is removed at the end, with any other filter on it",
				"ifname", m.keys.iface.name)
			probes = append(probes, m.keys.tcProbes()...)
		}
	}
	probes = append(probes, tlsrecord.ConnProbes(sock)...)
	spec := &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		Counters:       tlsrecord.Counters(),
		BehindMap:      tlsrecord.BehindMap,
		BufferKiB:      defaultBufferKiB[m.mode],
		Constants:      tlsrecord.Constants(m.maxData),
	}
	switch {
	case m.named:
		// a binary named in the config is the one to probe
		spec.NodeWide = ebpfbase.NodeWideOff
	case keys:
		// the key modes' programs are per binary layout: copies only
		spec.NodeWide = ebpfbase.NodeWideCopies
	}
	if keys {
		maps.Copy(spec.Constants, m.keys.constants(m.mode))
		spec.Counters = append(spec.Counters, m.keys.counters(m.mode)...)
	}
	if atEntry {
		spec.Constants[constWriteAtEntry] = uint32(1)
	}
	if m.mode == ModePcap {
		spec.EventMaps = append(spec.EventMaps, pcapEventsMap)
	}
	return spec, nil
}

// constWriteAtEntry is the global of kern/openssl_kern.c that captures
// writes from their entry probe alone.
const constWriteAtEntry = "openssl_write_at_entry"

// writeAtEntry tells whether writes are captured by their entry probe
// alone, sparing the return probe's trap on every SSL_write: in text mode
// (keys false: the key modes need the return, after which a handshake done
// inside the write has keys), on a kernel with the sock tracepoints, which see the
// failed sends that make the library call again for the same bytes (see
// "Writes at entry" in kern/include/tls.h).
func writeAtEntry(keys, sock bool) bool { return !keys && sock }

// keyMode reports whether the module captures keys (keylog and pcap modes)
// rather than plaintext.
func (m *Module) keyMode() bool { return m.mode == ModeKeylog || m.mode == ModePcap }
