package gnutlsmod

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/examples/gnutls/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Name and Version of the module.
const (
	Name    = "gnutls"
	Version = "0.1.0"
)

// AttrLibgnutls is the config attribute naming the library to probe.
const AttrLibgnutls = "libgnutls"

// LibGnuTLS is the value of the field lib of every event.
const LibGnuTLS = "gnutls"

var schema = sdk.Schema{Attributes: []sdk.Attribute{{
	Name:    AttrLibgnutls,
	Type:    sdk.TypeString,
	Default: "",
	Description: "Path of the libgnutls.so to probe. Empty: every libgnutls the pid filter's process maps " +
		"or, without a pid filter, every libgnutls.so.30 the loader knows.",
}, {
	Name:    AttrRecordFile,
	Type:    sdk.TypeString,
	Default: "",
	Description: "Append every raw record the probes send (each after its length, 4 bytes little-endian) to this file, " +
		"for decoder tests and fuzz corpora. It holds plaintext: created 0600; a symbolic link or another user's file is refused.",
}, tlsrecord.MaxDataAttribute}}

// Symbols of the GnuTLS API the probes attach to.
const (
	symSend   = "gnutls_record_send"
	symRecv   = "gnutls_record_recv"
	symSetInt = "gnutls_transport_set_int2"
	symDeinit = "gnutls_deinit"
)

// fnNames name enum gnutls_fn of kern/gnutls_kern.c, the records' fn.
var fnNames = []string{1: symSend, 2: symRecv}

// probeDef is one probe of kern/gnutls_kern.c on a library.
type probeDef = tlsrecord.ProbeDef

var probeDefs = []probeDef{
	{Symbol: symSend, Section: "uprobe/gnutls_record_send", Program: "uprobe_gnutls_record_send", Required: true},
	{Symbol: symSend, Section: "uretprobe/gnutls_record_send", Program: "uretprobe_gnutls_record_send", Required: true},
	{Symbol: symRecv, Section: "uprobe/gnutls_record_recv", Program: "uprobe_gnutls_record_recv", Required: true},
	{Symbol: symRecv, Section: "uretprobe/gnutls_record_recv", Program: "uretprobe_gnutls_record_recv", Required: true},
	{Symbol: symSetInt, Section: "uprobe/gnutls_transport_set_int2", Program: "uprobe_gnutls_transport_set_int2", Required: false},
	{Symbol: symDeinit, Section: "uprobe/gnutls_deinit", Program: "uprobe_gnutls_deinit", Required: false},
}

// target is a library the probes attach to and the probed symbols it
// defines.
type target = tlsrecord.Target

// Module captures the plaintext of GnuTLS connections: it is the
// module's ebpfbase.Hooks. Create it with New and serve ebpfbase.New(New()).
// As ebpfbase.Hooks says, Decode is called from one goroutine at a time;
// the decoder's gap tracking relies on it.
type Module struct {
	logger  hclog.Logger
	targets []target
	dec     tlsrecord.Decoder
	maxData uint32 // max_data: bytes of a call copied, 0: all
	rec     recorder
}

// New returns the gnutls module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: tlsrecord.Decoder{Lib: LibGnuTLS, Fns: fnNames}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Plaintext of TLS connections made with GnuTLS (gnutls_record_send/gnutls_record_recv in libgnutls).",
		Schema:      schema,
	}
}

// Init checks libgnutls, or finds the libraries to probe when it is empty;
// it loads nothing. Problems are sdk.Diagnostics naming the attribute.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, _ sdk.Sink) error {
	m.logger = logger
	m.targets = nil
	maxData, d, ok := tlsrecord.MaxData(settings.Config.WithDefaults(schema))
	if !ok {
		return sdk.Diagnostics{d}
	}
	m.maxData = maxData
	if d, ok := m.rec.init(settings.Config.String(AttrRecordFile), logger); !ok {
		return sdk.Diagnostics{d}
	}
	if lib := settings.Config.String(AttrLibgnutls); lib != "" {
		t, d, ok := checkTarget(lib)
		if !ok {
			return sdk.Diagnostics{d}
		}
		m.targets = []target{t}
		return nil
	}
	found, err := discoverLibgnutls(settings.Common.PID)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf(AttrLibgnutls, "libgnutls not found", "%v; set %s to the libgnutls.so to probe", err, AttrLibgnutls)}
	}
	var targets []target
	for _, path := range libfind.Distinct(found) {
		t, d, ok := checkTarget(path)
		if !ok {
			m.logger.Warn("skipping a libgnutls found", "path", path, "problem", d.Detail)
			continue
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return sdk.Diagnostics{sdk.Errorf(AttrLibgnutls, "libgnutls not found",
			"none of %s defines %s and %s; set %s", strings.Join(found, ", "), symSend, symRecv, AttrLibgnutls)}
	}
	m.targets = targets
	for _, t := range m.targets {
		m.logger.Debug("library to probe", "path", t.Path, "symbols", strings.Join(t.Symbols, ","))
	}
	return nil
}

// checkTarget checks that path is a regular ELF file defining
// gnutls_record_send and gnutls_record_recv, and lists the probed symbols
// it defines.
func checkTarget(path string) (target, sdk.Diagnostic, bool) {
	return tlsrecord.TargetCheck{
		Attr: AttrLibgnutls, Kind: "library", Lib: "GnuTLS", Defs: probeDefs, Hint: "is it libgnutls?",
	}.Check(path)
}

// Spec describes the bytecode and the probes: on every library each probed
// symbol it defines, and the socket tracepoints once.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	return m.spec(tlsrecord.SockTracepointPath)
}

// spec is Spec with the sock tracepoints used when sockPath exists (a test
// passes a path that does not, for the syscall tracepoints).
func (m *Module) spec(sockPath string) (*ebpfbase.Spec, error) {
	if len(m.targets) == 0 {
		return nil, errors.New("describing probes: Init did not succeed")
	}
	probes := tlsrecord.Probes(m.targets, probeDefs, sockPath, m.logger)
	return &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		Counters:       tlsrecord.Counters(),
		BehindMap:      tlsrecord.BehindMap,
		Constants:      tlsrecord.Constants(m.maxData),
	}, nil
}

// Decode decodes a struct tls_data_event of tls.h into a tls_data event
// (see the package documentation). It never panics: a short or
// inconsistent record is an error wrapping ebpfbase.ErrShortRecord or
// tlsrecord.ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	m.rec.write(raw)
	_, err := m.dec.Decode(raw, ev)
	return err
}
