package mysqldmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/mysqld/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

// Name and Version of the module.
const (
	Name    = "mysqld"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrBinary        = "binary"
	AttrServerVersion = "server_version"
	AttrOffsets       = "offsets"
)

// defaultBufferKiB is the ring buffer of the module unless buffer_kib says
// otherwise: a statement's text must fit in it whole (16 MiB is MariaDB's
// default max_allowed_packet).
const defaultBufferKiB = 16 << 10

// Loss counters of the module, beside those of ebpfbase.
const (
	// CounterTruncated counts texts longer than the kernel sends of one
	// call (32 MiB); their events carry truncated=true.
	CounterTruncated = "text_truncated"
	// CounterFault counts chunks of text the kernel could not read from
	// the server.
	CounterFault = "text_fault"
	// CounterStatementsLost counts calls of dispatch_command whose end
	// record the ring buffer could not take: each command is an event or
	// counted here.
	CounterStatementsLost = "statements_lost"
	// CounterNested counts calls of dispatch_command entered while the
	// same thread's previous call had not returned (MariaDB 10.2 to
	// 10.5's COM_MULTI runs its commands so): the earlier call gets no
	// event.
	CounterNested = "calls_nested"
	// CounterOrphans counts texts whose call never ended (its end record
	// was lost), dropped when the thread's next call began.
	CounterOrphans = "text_orphaned"
)

// Indexes of the per-CPU counters mysqld_stats in kern/mysqld_kern.c.
const (
	statTruncated = 0
	statFault     = 1
	statLost      = 2
	statNested    = 3
	statsMap      = "mysqld_stats"
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name:    AttrBinary,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of the server binary (mariadbd, mysqld) to probe. Empty: that of the pid filter's process, " +
			"else that of the running mariadbd/mysqld processes, else /usr/sbin/mariadbd or /usr/sbin/mysqld.",
	},
	{
		Name:    AttrServerVersion,
		Type:    sdk.TypeString,
		Default: "",
		Description: `Read the binary as this MariaDB release ("10.11") instead of the version it carries: ` +
			"for a build whose version is unknown to the module or cannot be read.",
	},
	{
		Name: AttrOffsets,
		Type: sdk.TypeStringList,
		Description: `Offsets to use instead of those read from the binary's code, as "name=0x1a" items ` +
			"(thd_thread_id, thd_stmt_da, da_sqlstate, da_errno, da_message, da_affected_rows, da_warn_count, " +
			"da_status, stmt_query_string, thd_sent_rows; -1 leaves one unread).",
	},
}}

// Module captures the commands a MariaDB server executes: it is the
// module's ebpfbase.Hooks. Create it with New and serve
// ebpfbase.New(New()). Decode joins each call's text chunks: like every
// decoder, it is called only from Run's goroutine.
type Module struct {
	logger hclog.Logger
	sink   sdk.Sink
	stamp  ebpfbase.Stamper // Decode's
	srv    server
	layout layout
	dec    decoder
}

// New returns the mysqld module.
func New() *Module {
	m := &Module{logger: hclog.NewNullLogger()}
	m.dec.init()
	return m
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:    Name,
		Version: Version,
		Description: "Commands a MariaDB 10.x/11.x server executes (probing dispatch_command): each statement's text, " +
			"command, connection id, duration and outcome (error code and message, affected rows).",
		Schema: schema,
	}
}

// Init finds and checks the server binary, reads its version and its
// layout; it loads nothing. Problems are sdk.Diagnostics naming the
// attribute to change.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	m.logger, m.sink = logger, sink
	cfg := settings.Config.WithDefaults(schema)
	srv, l, diags := inspect(cfg, settings.Common.PID)
	if diags.HasErrors() {
		return diags
	}
	m.srv, m.layout = srv, l
	m.logger.Info("server binary checked", "binary", srv.path, "version", srv.version.String(),
		"dispatch_command", srv.dispatch, "layout", l.String())
	if len(srv.missing) > 0 {
		m.logger.Warn("events carry no rows_sent", "binary", srv.path, "why", strings.Join(srv.missing, "; "))
	}
	if len(srv.execLoops) == 0 {
		m.logger.Warn("the binary has no Prepared_statement::execute_loop: EXECUTE events carry no statement text", "binary", srv.path)
	}
	return nil
}

// inspect checks the configured or found binary and reads what the probes
// need from it.
func inspect(cfg sdk.Config, pid uint32) (server, layout, sdk.Diagnostics) {
	var srv server
	over, err := parseOffsets(cfg.StringList(AttrOffsets))
	if err != nil {
		return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrOffsets, "Invalid offsets", "%v", err)}
	}
	path := cfg.String(AttrBinary)
	if path == "" {
		found, err := findServer(pid)
		if err != nil {
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Server binary not found", "%v; set %s to the mariadbd to probe", err, AttrBinary)}
		}
		path = found
	}
	if d, ok := checkFile(path); !ok {
		return srv, layout{}, sdk.Diagnostics{d}
	}
	srv.path = path

	// What kind of server: MariaDB's dispatch_command, MySQL's, or neither.
	dispatch, err := symbolsWithPrefix(path, dispatchMariaDB)
	if err != nil {
		return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Not an ELF binary", "%s: %v", path, err)}
	}
	if len(dispatch) != 1 {
		mysql, _ := symbolsWithPrefix(path, dispatchMySQL)
		v, verr := readVersion(path)
		switch {
		case len(mysql) > 0:
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Unsupported server",
				"%s is MySQL (version %s): its dispatch_command(THD*, COM_DATA*, command) is not supported by this module, which reads MariaDB 10.x and 11.x; %s and %s do not apply to MySQL",
				path, versionOrUnknown(v, verr), AttrServerVersion, AttrOffsets)}
		case len(dispatch) > 1:
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Unsupported server",
				"%s defines several dispatch_command functions (%s)", path, strings.Join(dispatch, ", "))}
		}
		return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Not a database server",
			"%s does not define dispatch_command (looked up in .symtab and .dynsym): it is not a MariaDB or MySQL server, or its symbols were stripped", path)}
	}
	srv.dispatch = dispatch[0]
	for _, p := range []string{executeLoop, executeBulkLoop} {
		if syms, err := symbolsWithPrefix(path, p); err == nil && len(syms) == 1 {
			srv.execLoops = append(srv.execLoops, syms[0])
		}
	}

	// Which release: the one it carries, or server_version.
	if s := cfg.String(AttrServerVersion); s != "" {
		v, err := parseServerVersion(s)
		if err != nil {
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrServerVersion, "Invalid server version", "%v", err)}
		}
		srv.version = v
	} else {
		v, err := readVersion(path)
		switch {
		case err != nil:
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Unknown server version",
				"%v; if it is a MariaDB build, set %s to its release (e.g. \"10.11\")", err, AttrServerVersion)}
		case !v.maria:
			return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrBinary, "Unsupported server",
				"%s carries %s, not a MariaDB version; if it is a MariaDB build, set %s to its release", path, v, AttrServerVersion)}
		}
		srv.version = v
	}
	if !knownVersion(srv.version.major) {
		return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrServerVersion, "Unknown server version",
			"%s is MariaDB %s, whose layout this module does not know (it knows MariaDB 10.x and 11.x): "+
				"set %s to the known release it is closest to (e.g. \"11.8\") to read it as that, and %s to give offsets the binary's code does not",
			path, srv.version, AttrServerVersion, AttrOffsets)}
	}

	skip := map[string]bool{}
	for k := range maps.Keys(over) {
		skip[k] = true
	}
	l, missing, err := readLayout(path, skip)
	l.apply(over)
	if err != nil {
		return srv, layout{}, sdk.Diagnostics{sdk.Errorf(AttrOffsets, "Unknown server layout",
			"MariaDB %s at %s: %v; give the missing offsets with %s (see the module's documentation)", srv.version, path, err, AttrOffsets)}
	}
	srv.missing = missing
	return srv, l, nil
}

func versionOrUnknown(v serverVersion, err error) string {
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(v.String(), "MySQL ")
}

// checkFile checks that path is a regular file.
func checkFile(path string) (sdk.Diagnostic, bool) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sdk.Errorf(AttrBinary, "Binary not found", "%s does not exist", path), false
	case err != nil:
		return sdk.Errorf(AttrBinary, "Binary not readable", "%v", err), false
	case !st.Mode().IsRegular():
		return sdk.Errorf(AttrBinary, "Not a binary", "%s is not a regular file", path), false
	}
	if _, err := elfsym.Open(path); err != nil {
		if errors.Is(err, elfsym.ErrNotELF) {
			return sdk.Errorf(AttrBinary, "Not an ELF binary", "%s is not an ELF file", path), false
		}
		return sdk.Errorf(AttrBinary, "Binary not readable", "%v", err), false
	}
	return sdk.Diagnostic{}, true
}

// Spec describes the bytecode and the probes.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if m.srv.dispatch == "" {
		return nil, fmt.Errorf("describing probes: Init did not succeed")
	}
	probes := []ebpfbase.Probe{
		{Section: "uprobe/dispatch_command", Program: "uprobe_dispatch_command", Symbol: m.srv.dispatch, Binary: m.srv.path},
		{Section: "uretprobe/dispatch_command", Program: "uretprobe_dispatch_command", Symbol: m.srv.dispatch, Binary: m.srv.path},
	}
	for i, sym := range m.srv.execLoops {
		probes = append(probes, ebpfbase.Probe{Section: "uprobe/execute_loop", Program: "uprobe_execute_loop",
			Symbol: sym, Binary: m.srv.path, ID: fmt.Sprintf("exec%d", i)})
	}
	return &ebpfbase.Spec{
		CoreObject:     bpf.Core,
		Probes:         probes,
		Constants:      m.layout.constants(),
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
		BufferKiB:      defaultBufferKiB,
		Counters: []ebpfbase.CounterMap{
			{Name: CounterTruncated, Map: statsMap, Index: statTruncated},
			{Name: CounterFault, Map: statsMap, Index: statFault},
			{Name: CounterStatementsLost, Map: statsMap, Index: statLost},
			{Name: CounterNested, Map: statsMap, Index: statNested},
		},
	}, nil
}
