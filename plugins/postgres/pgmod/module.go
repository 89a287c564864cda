package pgmod

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/postgres/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Name and Version of the module.
const (
	Name    = "postgres"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrBinary        = "binary"
	AttrServerVersion = "server_version"
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name:    AttrBinary,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of the PostgreSQL server binary (postgres). Empty: the executables of running " +
			"postgres processes, else the installed servers.",
	},
	{
		Name:    AttrServerVersion,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Major release of the server (\"15\"). Empty: read from the binary; set it to run on a " +
			"release this module does not know as if it were the one named.",
	},
}}

// defaultBufferKiB sizes the kernel buffer (the ring buffer; each CPU's
// perf buffer for the non-CO-RE object) unless buffer_kib says otherwise:
// a long statement's chunks are queued at once, so its text arrives whole
// only when it fits in the buffer beside the records still unread.
const defaultBufferKiB = 4 << 10

// probes are the server functions probed: program, section, and the
// symbols it may attach to, the first one the binary defines (one each
// today; a function renamed in a later release gets its new name first).
var probes = []struct {
	program, section string
	symbols          []string
}{
	{"uprobe_report_activity", "uprobe/pgstat_report_activity", []string{"pgstat_report_activity"}},
	{"uprobe_parse_query", "uprobe/pg_parse_query", []string{"pg_parse_query"}},
	{"uprobe_portal_run", "uprobe/PortalRun", []string{"PortalRun"}},
	{"uretprobe_portal_run", "uretprobe/PortalRun", []string{"PortalRun"}},
	{"uprobe_pq_endmessage", "uprobe/pq_endmessage", []string{"pq_endmessage"}},
}

// Module captures PostgreSQL statements: it is the module's
// ebpfbase.Hooks. Create it with New and serve ebpfbase.New(New()).
type Module struct {
	logger   hclog.Logger
	stamp    ebpfbase.Stamper // Decode's
	servers  []server
	backends backendCache
	long     longTexts         // texts arriving in chunks
	in       ebpfbase.Interner // field values: codes, durations, names
	num      [20]byte          // a number being formatted
}

// New returns the postgres module.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), backends: backendCache{title: procTitle}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Statements executed by PostgreSQL 12+ servers (simple and extended protocol): text, duration, outcome.",
		Schema:      schema,
	}
}

// Init finds and checks the server binaries and their versions; it loads
// nothing.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, _ sdk.Sink) error {
	m.logger = logger
	cfg := settings.Config.WithDefaults(schema)
	override := strings.TrimSpace(cfg.String(AttrServerVersion))
	if override != "" {
		if _, err := knownMajor(override); err != nil {
			return sdk.Diagnostics{sdk.Errorf(AttrServerVersion, "Unknown PostgreSQL release", "%v", err)}
		}
	}
	paths := []string{cfg.String(AttrBinary)}
	if paths[0] == "" {
		found, err := discoverServers()
		if err != nil {
			return sdk.Diagnostics{sdk.Errorf(AttrBinary, "No PostgreSQL server found",
				"%v; set %s to the server binary (postgres)", err, AttrBinary)}
		}
		paths = found
	}
	var diags sdk.Diagnostics
	m.servers = m.servers[:0]
	for _, p := range paths {
		s, d, ok := checkServer(p, override)
		if !ok {
			diags = append(diags, d)
			continue
		}
		m.servers = append(m.servers, s)
		m.logger.Info("PostgreSQL server", "binary", s.path, "version", s.version, "as", s.major)
	}
	if diags.HasErrors() {
		return diags
	}
	return nil
}

// Spec describes the bytecode and the probes: every function on every
// server binary, and the exit tracepoint.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if len(m.servers) == 0 {
		return nil, fmt.Errorf("describing probes: Init did not succeed")
	}
	var ps []ebpfbase.Probe
	for i, s := range m.servers {
		for j, p := range probes {
			ps = append(ps, ebpfbase.Probe{
				Section: p.section, Program: p.program, Symbol: s.symbols[j],
				Binary: s.path, ID: fmt.Sprintf("pg%d", i),
			})
		}
	}
	ps = append(ps, ebpfbase.Probe{Section: "tracepoint/sched/sched_process_exit", Program: "tp_process_exit"})
	return &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		NonCoreObject:  bpf.NonCore,
		Probes:         ps,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		BufferKiB:      defaultBufferKiB,
	}, nil
}
