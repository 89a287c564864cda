package sdk

import (
	"context"

	"github.com/hashicorp/go-hclog"
)

// Module is the contract a capture module implements: the lifecycle the
// host drives, each method behind one call of the plugin protocol. It is
// the lifecycle half of eCapture's IModule; the event hooks (Events,
// DecodeFun, Decode, Dispatcher) belong to the eBPF base, which takes them
// as an ebpfbase.Hooks value and returns a Module.
//
// The SDK calls Info at any time, then Init once, Start once, Run once in
// its own goroutine, Stop once and Close once, in that order; Close is
// called even when Start failed. Stop may be called while Run is running
// and must make Run return.
type Module interface {
	// Info describes the module: name (the plugin name users write in
	// HCL), version, config schema.
	Info() Info
	// Init receives the checked settings and the sink for events. It must
	// not load anything into the kernel: ecaphost validate calls it too. A
	// returned Diagnostics value is shown to the user against the config
	// attributes it names.
	Init(ctx context.Context, logger hclog.Logger, settings Settings, sink Sink) error
	// Start loads the bytecode and attaches every probe. An error names the
	// probe that failed, its symbol and its binary.
	Start() error
	// Run reads events until Stop is called, then returns.
	Run() error
	// Stop makes Run return once what was already read has been delivered.
	Stop() error
	// Close detaches every probe and frees the kernel objects.
	Close() error
}

// Sink receives a module's events and loss counters. It is safe for
// concurrent use.
type Sink interface {
	// Emit queues ev for the host. The sink copies what it needs: ev and
	// its payload may be reused as soon as Emit returns. Emit blocks while
	// the transport's bounded queue is full.
	Emit(ev *Event)
	// SetCounter records the cumulative value of a loss counter (records
	// the kernel could not reserve, samples a perf buffer dropped...). It
	// is sent with every batch.
	SetCounter(name string, total uint64)
}

// Info describes a module to the host.
type Info struct {
	Name        string
	Version     string
	Description string
	// APIVersions the module implements; empty means sdk.APIVersions.
	APIVersions []uint32
	Schema      Schema
}

// Settings are what Init receives: the common settings the host owns and
// the module's own config, already checked against its Schema.
type Settings struct {
	APIVersion uint32
	Common     Common
	Config     Config
	// CheckOnly is set by `ecaphost validate`: check, do not prepare.
	CheckOnly bool
}

// Common are the settings every module gets from the host. The filters are
// meant to be applied in the kernel (ebpfbase passes them as constants).
type Common struct {
	PID       uint32 // 0: every process
	UID       uint32 // 0: every user
	Comm      string // empty: every command name
	BTFFile   string // empty: /sys/kernel/btf/vmlinux
	BufferKiB uint32 // ring buffer size; 0: the module's default
	// Cgroup filter: only tasks in the cgroup v2 CgroupID, at depth
	// CgroupLevel below the root, or in its descendants (0: every
	// cgroup). The host resolves the cgroup and container settings into
	// them; CgroupPath says which cgroup, for messages.
	CgroupID    uint64
	CgroupLevel uint32
	CgroupPath  string
}

// InfoCounterPrefix starts the name of a counter a module reports with its
// loss counters that counts work done, not events lost (e.g.
// "info_discovery_files_probed"): the host shows it in its summary but
// does not add it to the events lost.
const InfoCounterPrefix = "info_"

// TruncatedCounterPrefix starts the name of a counter of data captured in
// part: records that still reached the host but cut short (e.g.
// "truncated_records", "truncated_bytes"). The host shows them beside the
// losses, in its summary and metrics, but does not add them to the events
// lost: no event is missing, some of its bytes are.
const TruncatedCounterPrefix = "truncated_"

// ProbeInfo describes one probe a module attached.
type ProbeInfo struct {
	Program string // the eBPF program
	Kind    string // uprobe, uretprobe, tracepoint, raw_tracepoint...
	Target  string // the symbol or tracepoint
	Binary  string // for uprobes: the file probed
}

// ProbeLister is an optional capability of a Module: the probes it
// attached, which the host logs after Start. The modules ebpfbase.New
// returns implement it. A module without it still runs; the host notes the capability as
// absent.
type ProbeLister interface {
	Probes() []ProbeInfo
}
