package nsprmod

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/nspr/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Name and Version of the module.
const (
	Name    = "nspr"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrNSPRLib = "nspr_lib"
	AttrSSLOnly = "ssl_only"
)

// Loss counters of the module, beside those of ebpfbase: those of
// kern/include/tls.h.
const (
	// CounterTruncated counts calls that moved more than the kernel sends
	// of one call (16 MiB); their events end with the field truncated.
	CounterTruncated = tlsrecord.CounterTruncated
	// CounterFault counts chunks the kernel could not read from the
	// process's buffer.
	CounterFault = tlsrecord.CounterFault
	// CounterTooDeep counts calls not captured because the thread was
	// already inside 4 nested NSPR calls.
	CounterTooDeep = tlsrecord.CounterTooDeep
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name:    AttrNSPRLib,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of the libnspr4.so to probe (or of a library NSPR is folded into, defining PR_Write). " +
			"Empty: the one the pid filter's process maps or, without a pid filter, every libnspr4.so the loader knows.",
	},
	{
		Name:    AttrSSLOnly,
		Type:    sdk.TypeBool,
		Default: true,
		Description: "Keep only the calls on descriptors carrying NSS's SSL layer (TLS plaintext); " +
			"false also captures NSPR's plain files, pipes and sockets, each event saying its layer.",
	},
	tlsrecord.MaxDataAttribute,
}}

// Symbols of the NSPR API the probes attach to.
const (
	symWrite    = "PR_Write"
	symSend     = "PR_Send"
	symRead     = "PR_Read"
	symRecv     = "PR_Recv"
	symWritev   = "PR_Writev"
	symClose    = "PR_Close"
	symIdentity = "PR_GetUniqueIdentity"
)

// probeDef is one probe of kern/nspr_kern.c on a traced binary; Required
// ones define what NSPR is.
type probeDef = tlsrecord.ProbeDef

var probeDefs = []probeDef{
	{Symbol: symWrite, Section: "uprobe/PR_Write", Program: "uprobe_pr_write", Required: true},
	{Symbol: symWrite, Section: "uretprobe/PR_Write", Program: "uretprobe_pr_write", Required: true},
	{Symbol: symSend, Section: "uprobe/PR_Send", Program: "uprobe_pr_send", Required: false},
	{Symbol: symSend, Section: "uretprobe/PR_Send", Program: "uretprobe_pr_send", Required: false},
	{Symbol: symRead, Section: "uprobe/PR_Read", Program: "uprobe_pr_read", Required: true},
	{Symbol: symRead, Section: "uretprobe/PR_Read", Program: "uretprobe_pr_read", Required: true},
	{Symbol: symRecv, Section: "uprobe/PR_Recv", Program: "uprobe_pr_recv", Required: false},
	{Symbol: symRecv, Section: "uretprobe/PR_Recv", Program: "uretprobe_pr_recv", Required: false},
	{Symbol: symWritev, Section: "uprobe/PR_Writev", Program: "uprobe_pr_writev", Required: false},
	{Symbol: symWritev, Section: "uretprobe/PR_Writev", Program: "uretprobe_pr_writev", Required: false},
	{Symbol: symClose, Section: "uprobe/PR_Close", Program: "uprobe_pr_close", Required: false},
	{Symbol: symIdentity, Section: "uprobe/PR_GetUniqueIdentity", Program: "uprobe_pr_get_unique_identity", Required: false},
	{Symbol: symIdentity, Section: "uretprobe/PR_GetUniqueIdentity", Program: "uretprobe_pr_get_unique_identity", Required: false},
}

// constSSLOnly is the const volatile of kern/nspr_kern.c set from ssl_only.
const constSSLOnly = "nspr_ssl_only"

// sockTracepointPath tells whether the kernel has the sock tracepoints
// (tlsrecord.ConnProbes); a variable for tests.
var sockTracepointPath = tlsrecord.SockTracepointPath

// target is a binary the probes attach to and the probed symbols it defines.
type target = tlsrecord.Target

// Module captures the plaintext of NSS connections through NSPR. Create it
// with New and serve ebpfbase.New(New()); it is the module's
// ebpfbase.Hooks. Decode keeps per-connection state to mark gaps: like
// every decoder, it is called one record at a time.
type Module struct {
	logger  hclog.Logger
	sslOnly bool
	targets []target
	named   bool              // nspr_lib set: probe it alone
	maxData uint32            // max_data: bytes of a call copied, 0: all
	dec     tlsrecord.Decoder // Decode's, with the gap tracker
}

// New returns the nspr module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: tlsrecord.Decoder{Lib: LibNSPR, Fns: fnNames}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Plaintext of TLS connections made with NSS, read where it passes through NSPR (libnspr4: Firefox, Thunderbird, NSS tools).",
		Schema:      schema,
	}
}

// Init checks nspr_lib, or finds the libnspr4.so to probe when it is
// empty, and reads ssl_only; it loads nothing. Problems are
// sdk.Diagnostics naming the attribute.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, _ sdk.Sink) error {
	m.logger = logger
	m.targets = nil
	cfg := settings.Config.WithDefaults(schema)
	var diags sdk.Diagnostics
	var targets []target
	if lib := cfg.String(AttrNSPRLib); lib != "" {
		t, d, ok := checkTarget(lib)
		if !ok {
			diags = append(diags, d)
		}
		targets = append(targets, t)
	} else {
		found, err := discoverNSPR(settings.Common.PID)
		if err != nil {
			diags = append(diags, sdk.Errorf(AttrNSPRLib, "libnspr4 not found", "%v; set %s to the libnspr4.so to probe", err, AttrNSPRLib))
		}
		for _, path := range found {
			t, d, ok := checkTarget(path)
			if !ok {
				m.logger.Warn("skipping a libnspr4 found", "path", path, "problem", d.Detail)
				continue
			}
			targets = append(targets, t)
		}
		if err == nil && len(targets) == 0 {
			diags = append(diags, sdk.Errorf(AttrNSPRLib, "libnspr4 not found", "no libnspr4 found defines %s and %s; set %s", symWrite, symRead, AttrNSPRLib))
		}
	}
	maxData, d, ok := tlsrecord.MaxData(cfg)
	if !ok {
		diags = append(diags, d)
	}
	if diags.HasErrors() {
		return diags
	}
	m.maxData = maxData
	m.sslOnly = cfg.Bool(AttrSSLOnly)
	m.named = cfg.String(AttrNSPRLib) != ""
	m.targets = tlsrecord.Distinct(targets)
	for _, t := range m.targets {
		m.logger.Debug("binary to probe", "path", t.Path, "symbols", strings.Join(t.Symbols, ","), "ssl_only", m.sslOnly)
	}
	return nil
}

// checkTarget checks that path is a regular ELF file defining PR_Write and
// PR_Read, and lists the probed symbols it defines.
func checkTarget(path string) (target, sdk.Diagnostic, bool) {
	return tlsrecord.TargetCheck{
		Attr: AttrNSPRLib, Kind: "library", Lib: "NSPR", Defs: probeDefs,
		Hint: "is it libnspr4.so, or a library NSPR is folded into (Firefox's libnss3.so)?",
	}.Check(path)
}

// Spec describes the bytecode and the probes: on every target each probed
// symbol it defines, and the socket probes of tls.h once.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if len(m.targets) == 0 {
		return nil, errors.New("describing probes: Init did not succeed")
	}
	probes := tlsrecord.Probes(m.targets, probeDefs, sockTracepointPath, m.logger)
	var sslOnly uint32
	if m.sslOnly {
		sslOnly = 1
	}
	spec := &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		Constants:      tlsrecord.Constants(m.maxData),
		Counters:       tlsrecord.Counters(),
		BehindMap:      tlsrecord.BehindMap,
	}
	spec.Constants[constSSLOnly] = sslOnly
	if m.named {
		spec.NodeWide = ebpfbase.NodeWideOff
	}
	return spec, nil
}
