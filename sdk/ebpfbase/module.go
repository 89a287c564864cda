package ebpfbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	manager "github.com/gojue/ebpfmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

// Names the maps of kern/include/ecap.h have in every object built with it.
const (
	// EventsMap is the ring buffer (perf event array in the non-CO-RE
	// build) that ecap_output writes records to.
	EventsMap = "ecap_events"
	// LostMap is the per-CPU array counting records that could not be
	// queued; it is reported as CounterReserveFailed.
	LostMap = "ecap_lost"
)

// Names of the loss counters Run reports with sdk.Sink.SetCounter.
const (
	// CounterReserveFailed is the sum over CPUs of Spec.LostCounterMap:
	// records the kernel side could not queue (ring buffer full).
	CounterReserveFailed = "ringbuf_reserve_failed"
	// CounterPerfLost counts samples perf event arrays dropped.
	CounterPerfLost = "perf_lost"
	// CounterDecodeErrors counts records Decode rejected.
	CounterDecodeErrors = "decode_errors"
)

// Spec is what a concrete module describes: its bytecode, its probes and
// the maps Run reads. Start asks for it through Child.Spec, after Init.
type Spec struct {
	// CoreObject is the CO-RE ELF object, used when the kernel has BTF (or
	// the btf_file setting names a BTF file). NonCoreObject is used on a
	// kernel without BTF; nil if the module has none. At least one must be
	// set.
	CoreObject, NonCoreObject []byte
	// Probes are attached by Start; every one must attach. Start takes
	// ownership of them: build new ones in every call of Spec.
	Probes []*manager.Probe
	// EventMaps are the maps Run reads, ring buffers or perf event arrays.
	// Nil means []string{EventsMap}. The ring buffers among them are
	// resized to the buffer_kib setting.
	EventMaps []string
	// LostCounterMap is the per-CPU array whose first element counts
	// failed reservations, reported as CounterReserveFailed; "" if none.
	// Objects built with ecap.h have LostMap.
	LostCounterMap string
	// Constants are extra values for const volatile globals of the object,
	// by name; each must exist in the object.
	Constants map[string]any
	// Counters are further loss counters the module keeps in the kernel,
	// reported by Run with the others (e.g. records a module cut short).
	Counters []CounterMap
}

// CounterMap names one cumulative counter kept by the bytecode: element
// Index of the per-CPU array Map, of 64-bit values, summed over the CPUs
// and reported by Run as the loss counter Name.
type CounterMap struct {
	Name  string
	Map   string
	Index uint32
}

// Child is what a concrete module adds to Module: it is the sdk.Module
// itself (Info, and its own Init, Decode or DecodeFun, Dispatcher override
// the promoted ones) plus the description of its bytecode.
type Child interface {
	sdk.Module
	// Spec describes the bytecode, probes and maps. Start calls it once,
	// after Init, so it may depend on the settings.
	Spec() (*Spec, error)
}

// BytecodeMode chooses between the CO-RE and non-CO-RE objects.
type BytecodeMode uint8

const (
	// BytecodeAuto uses CO-RE when the kernel has BTF (or btf_file is set),
	// the non-CO-RE object otherwise.
	BytecodeAuto BytecodeMode = iota
	// BytecodeCORE always uses the CO-RE object.
	BytecodeCORE
	// BytecodeNonCORE always uses the non-CO-RE object, e.g. to test it on
	// a kernel that has BTF.
	BytecodeNonCORE
)

func (b BytecodeMode) String() string {
	switch b {
	case BytecodeAuto:
		return "auto"
	case BytecodeCORE:
		return "CO-RE"
	case BytecodeNonCORE:
		return "non-CO-RE"
	}
	return "unknown"
}

// Module implements the part of sdk.Module every eBPF capture module
// shares: loading the right object through gojue/ebpfmanager, setting the
// filter constants, checking that every probe attached, reading ring
// buffers and perf event arrays, decoding into one reused sdk.Event,
// routing it, and reporting the loss counters.
//
// A concrete module embeds Module, calls SetChild with itself, and
// implements Info, Init (calling Module.Init first), Spec, and Decode or
// DecodeFun; Dispatcher only when it emits sdk.RouteModule events.
//
// The lifecycle methods follow the sdk.Module contract: Init, Start, Run
// (in its own goroutine), Stop (from any goroutine, while Run runs), Close.
// Decode, DecodeFun, Dispatcher and the helpers Comm and KtimeToTime are
// called from the goroutine running Run and are not safe for concurrent
// use.
type Module struct {
	// Bytecode forces one of the objects; the zero value chooses by the
	// kernel's BTF. Set it before Start.
	Bytecode BytecodeMode

	child    Child
	ctx      context.Context
	logger   hclog.Logger
	settings sdk.Settings
	sink     sdk.Sink

	spec      *Spec
	mgr       *manager.Manager
	choice    bytecodeChoice
	eventMaps []*ebpf.Map
	// opened: readers on eventMaps, opened by Start before it attached
	// anything, for Run (guarded by mu).
	opened   []*source
	lostMap  *ebpf.Map
	counters []counter
	decoders map[*ebpf.Map]sdk.DecodeFunc

	clock clock
	comms commCache

	// run state, guarded by mu
	mu       sync.Mutex
	stopping bool
	closed   bool
	stopCh   chan struct{}
	sources  []*source
	runDone  chan struct{}

	// owned by the goroutine running Run
	ev           sdk.Event
	handleMu     sync.Mutex    // decoding and routing; the counters below
	poll         time.Duration // ring buffer read deadline; 0: wake-up per record
	perfLost     uint64
	decodeErrors uint64
	lostValues   []uint64
	errLog       rateLimiter // decode errors, undispatched events
	readLog      rateLimiter // reader and counter problems
}

// SetChild tells Module which concrete module embeds it. Call it before
// Start, typically in the module's constructor or Init.
func (m *Module) SetChild(c Child) { m.child = c }

// Init stores the context, logger, settings and sink. It loads nothing.
// A concrete module calls it first from its own Init.
func (m *Module) Init(ctx context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m.ctx, m.logger, m.settings, m.sink = ctx, logger, settings, sink
	return nil
}

// Name returns the name in the child's Info.
func (m *Module) Name() string {
	if m.child == nil {
		return ""
	}
	return m.child.Info().Name
}

// Logger returns the logger Init received (a null logger before Init).
func (m *Module) Logger() hclog.Logger {
	if m.logger == nil {
		return hclog.NewNullLogger()
	}
	return m.logger
}

// Context returns the context Init received.
func (m *Module) Context() context.Context {
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

// Settings returns the settings Init received.
func (m *Module) Settings() sdk.Settings { return m.settings }

// Sink returns the sink Init received.
func (m *Module) Sink() sdk.Sink { return m.sink }

// CORE reports whether Start loaded the CO-RE object.
func (m *Module) CORE() bool { return m.choice.core }

// Manager returns the ebpfmanager of the loaded object, nil before Start.
func (m *Module) Manager() *manager.Manager { return m.mgr }

// Map returns the loaded map called name, nil before Start or if absent.
func (m *Module) Map(name string) *ebpf.Map {
	if m.mgr == nil {
		return nil
	}
	em, ok, err := m.mgr.GetMap(name)
	if err != nil || !ok {
		return nil
	}
	return em
}

// Start chooses the object, sets the filter constants, resizes the ring
// buffers, loads the object, attaches every probe and checks that each one
// is attached. An attach failure is an *AttachError naming the probe's
// symbol and binary. On error nothing stays loaded.
func (m *Module) Start() error {
	if m.child == nil {
		return errors.New("starting module: SetChild was not called")
	}
	if m.mgr != nil {
		return errors.New("starting module: already started")
	}
	if m.logger == nil {
		m.logger = hclog.NewNullLogger()
	}
	spec, err := m.child.Spec()
	if err != nil {
		return fmt.Errorf("describing the bytecode of module %s: %w", m.Name(), err)
	}
	if spec == nil {
		return fmt.Errorf("describing the bytecode of module %s: Spec returned nil", m.Name())
	}
	m.spec = spec
	m.clock.init()

	choice, err := chooseBytecode(spec, m.settings.Common.BTFFile, systemBTFPath, m.Bytecode)
	if err != nil {
		return err
	}
	m.choice = choice
	m.logger.Debug("bytecode chosen", "variant", choice.variant(), "reason", choice.reason)

	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(choice.object))
	if err != nil {
		return fmt.Errorf("reading the %s object of module %s: %w", choice.variant(), m.Name(), err)
	}
	opts := manager.Options{}
	if choice.btfFile != "" {
		kt, err := btf.LoadSpec(choice.btfFile)
		if err != nil {
			return fmt.Errorf("loading kernel BTF from btf_file %s: %w", choice.btfFile, err)
		}
		opts.VerifierOptions.Programs.KernelTypes = kt
	}
	consts, err := constants(cs, m.settings.Common, spec.Constants, m.logger)
	if err != nil {
		return err
	}
	for name, v := range consts {
		opts.ConstantEditors = append(opts.ConstantEditors, manager.ConstantEditor{Name: name, Value: v, FailOnMissing: true})
	}
	eventNames := spec.EventMaps
	if eventNames == nil {
		eventNames = []string{EventsMap}
	}
	editors, err := mapEditors(cs, eventNames, spec.LostCounterMap, m.settings.Common.BufferKiB)
	if err != nil {
		return err
	}
	if err := checkCounterMaps(cs, spec.Counters); err != nil {
		return err
	}
	opts.MapSpecEditors = editors
	if wb, ok := wakeupBytes(cs, eventNames, editors); ok {
		opts.ConstantEditors = append(opts.ConstantEditors, manager.ConstantEditor{Name: ConstWakeupBytes, Value: wb, FailOnMissing: true})
		m.poll = pollInterval
	}
	if err := precheckProbes(cs, spec.Probes); err != nil {
		return err
	}

	mgr := &manager.Manager{Probes: spec.Probes}
	if err := mgr.InitWithOptions(bytes.NewReader(choice.object), opts); err != nil {
		cleanupFailedInit(mgr)
		return fmt.Errorf("loading the %s object of module %s: %w", choice.variant(), m.Name(), trimManagerError(err))
	}
	stop := func(err error) error {
		_ = mgr.Stop(manager.CleanAll)
		return err
	}
	find := func(kind, name string) (*ebpf.Map, error) {
		em, ok, err := mgr.GetMap(name)
		if err != nil || !ok {
			return nil, fmt.Errorf("finding %s map %s of module %s: not loaded", kind, name, m.Name())
		}
		return em, nil
	}
	m.eventMaps = m.eventMaps[:0]
	for _, name := range eventNames {
		em, err := find("event", name)
		if err != nil {
			return stop(err)
		}
		m.eventMaps = append(m.eventMaps, em)
	}
	if spec.LostCounterMap != "" {
		em, err := find("counter", spec.LostCounterMap)
		if err != nil {
			return stop(err)
		}
		m.lostMap = em
	}
	m.counters = m.counters[:0]
	for _, c := range spec.Counters {
		em, err := find("counter", c.Map)
		if err != nil {
			return stop(err)
		}
		m.counters = append(m.counters, counter{CounterMap: c, m: em})
	}
	// The readers exist before the first probe can fire: a perf event
	// array without its reader's events fails every output (counted
	// lost), where a ring buffer would only queue.
	opened, err := m.openSources(m.eventMaps)
	if err != nil {
		return stop(err)
	}
	if err := checkAttached(mgr.Probes, mgr.Start()); err != nil {
		closeSources(opened)
		return stop(err)
	}
	m.mu.Lock()
	m.opened = opened
	m.mu.Unlock()
	m.mgr = mgr
	m.logger.Info("module started", "bytecode", choice.variant(), "probes", len(mgr.Probes))
	return nil
}

// cleanupFailedInit frees what InitWithOptions loaded before failing. The
// manager's Stop dereferences its collection, so it is called only when
// the collection exists (GetMap fails with ErrManagerNotInitialized when
// it does not).
func cleanupFailedInit(mgr *manager.Manager) {
	if _, _, err := mgr.GetMap(EventsMap); errors.Is(err, manager.ErrManagerNotInitialized) {
		return
	}
	_ = mgr.Stop(manager.CleanAll)
}

// trimManagerError drops the dump of the whole CollectionSpec ebpfmanager
// appends to load errors (", cs:..."), keeping the verifier's message.
func trimManagerError(err error) error {
	msg := err.Error()
	i := strings.Index(msg, ", cs:")
	if i < 0 {
		return err
	}
	return &trimmedError{msg: msg[:i], err: err}
}

type trimmedError struct {
	msg string
	err error
}

func (e *trimmedError) Error() string { return e.msg }
func (e *trimmedError) Unwrap() error { return e.err }

// Events returns the maps Run reads, resolved by Start.
func (m *Module) Events() []*ebpf.Map { return m.eventMaps }

// DecodeFun returns no decoder: a module overrides DecodeFun or Decode.
func (m *Module) DecodeFun(*ebpf.Map) (sdk.DecodeFunc, bool) { return nil, false }

// Decode decodes raw with the child's DecodeFun for em, looked up once per
// map. A module that overrides Decode does not need DecodeFun.
func (m *Module) Decode(em *ebpf.Map, raw []byte, ev *sdk.Event) error {
	fn, ok := m.decoders[em]
	if !ok {
		if m.child != nil {
			fn, ok = m.child.DecodeFun(em)
		}
		if !ok || fn == nil {
			return fmt.Errorf("decoding a record of map %s: module has no decoder for it", mapName(em))
		}
		if m.decoders == nil {
			m.decoders = map[*ebpf.Map]sdk.DecodeFunc{}
		}
		m.decoders[em] = fn
	}
	return fn(raw, ev)
}

// Dispatcher drops the event: a module that emits sdk.RouteModule events
// overrides it.
func (m *Module) Dispatcher(ev *sdk.Event) {
	m.errLog.log(m.Logger(), "dropping event routed to the module: the module has no Dispatcher", "kind", ev.Kind)
}

// Close stops reading, detaches every probe and frees the kernel objects.
// It may be called after a failed Start, and more than once.
func (m *Module) Close() error {
	m.mu.Lock()
	m.stopping, m.closed = true, true
	closeSources(m.sources)
	closeSources(m.opened) // Run never took them
	m.opened = nil
	runDone := m.runDone
	m.mu.Unlock()
	if runDone != nil {
		<-runDone
	}
	if m.mgr == nil {
		return nil
	}
	mgr := m.mgr
	m.mgr = nil
	if err := mgr.Stop(manager.CleanAll); err != nil && !errors.Is(err, manager.ErrManagerNotInitialized) {
		return fmt.Errorf("detaching the probes of module %s: %w", m.Name(), err)
	}
	return nil
}

func mapName(em *ebpf.Map) string {
	if em == nil {
		return "<nil>"
	}
	if info, err := em.Info(); err == nil && info.Name != "" {
		return info.Name
	}
	return em.String()
}

// Probes lists the probes Start attached (sdk.ProbeLister): the host logs
// them so an operator sees which binaries and symbols are watched.
func (m *Module) Probes() []sdk.ProbeInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mgr == nil {
		return nil
	}
	var out []sdk.ProbeInfo
	for _, p := range m.mgr.Probes {
		if !p.IsRunning() {
			continue
		}
		kind, target, _ := strings.Cut(p.Section, "/")
		if p.AttachToFuncName != "" {
			target = p.AttachToFuncName
		}
		out = append(out, sdk.ProbeInfo{Program: p.EbpfFuncName, Kind: kind, Target: target, Binary: p.BinaryPath})
	}
	return out
}
