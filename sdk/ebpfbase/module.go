package ebpfbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	manager "github.com/gojue/ebpfmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/discover"
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
	// Probes are attached by Start; every one must attach.
	Probes []Probe
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
	// BufferKiB sizes the ring buffers (and each CPU's perf buffer) when
	// the buffer_kib setting is 0; 0 keeps the size the object declares.
	BufferKiB uint32
	// NodeWide gives the uprobes node-wide reach (the default) or not.
	NodeWide NodeWide
	// BehindMap names an array of one 32-bit value that Run sets to 1
	// while the host is not keeping up with the module's events (its
	// data channel backs up), 0 otherwise, so that the probes can send
	// less (the TLS modules cut records, kern/include/tls.h); "" if none.
	BehindMap string
	// ProbesLater allows Probes to be empty: the module attaches its
	// uprobes itself once it finds what to probe (Object.AttachUprobes
	// from Lifecycle.Started, e.g. with package discover on a node where
	// no target runs yet).
	ProbesLater bool
}

// CounterMap names one cumulative counter kept by the bytecode: element
// Index of the per-CPU array Map, of 64-bit values, summed over the CPUs
// and reported by Run as the loss counter Name.
type CounterMap struct {
	Name  string
	Map   string
	Index uint32
}

// Hooks are what a module gives the base: its own part of the lifecycle
// (Info, Init) and its event hooks (Spec, Decode), the Events, DecodeFun
// and Decode of eCapture's IModule. New takes them; the base calls them,
// the module never calls the base.
//
// Init is called by the Module's Init, once, before anything is loaded;
// Spec once by Start; Decode from the goroutine reading the buffers, one
// record at a time, never concurrently with itself or Dispatch.
type Hooks interface {
	// Info describes the module: name, version, config schema.
	Info() sdk.Info
	// Init checks the settings and keeps what Spec and Decode need (and
	// the logger and sink, if the module uses them). It must not load
	// anything into the kernel; a returned sdk.Diagnostics value is shown
	// to the user against the attributes it names.
	Init(ctx context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error
	// Spec describes the bytecode, probes and maps. Start calls it once,
	// after Init, so it may depend on the settings.
	Spec() (*Spec, error)
	// Decode decodes raw, a record read from the event map called
	// mapName, into ev. ev is reset before and reused after: Decode must
	// not keep ev or raw. It must not panic on short or hostile input (a
	// panic is recovered, counted and logged as a decode error).
	Decode(mapName string, raw []byte, ev *sdk.Event) error
}

// Dispatcher is implemented by Hooks that route events to themselves
// (sdk.RouteModule): the seed's Dispatcher. Dispatch receives each such
// event after Decode, from the same goroutine; it may keep state and emit
// derived events through the sink Init received. Without it such events
// are dropped and logged.
type Dispatcher interface {
	Dispatch(ev *sdk.Event)
}

// Lifecycle is implemented by Hooks with work of their own around the
// base's: files to write, links the base does not manage.
type Lifecycle interface {
	// Started is called at the end of Start, once every probe is
	// attached and before Run reads anything. An error fails Start:
	// everything is detached and Closed is called.
	Started(obj *Object) error
	// RunEnded is called when Run has delivered the last record, before
	// the final loss counters are reported.
	RunEnded()
	// Closed is called by Close after every probe is detached.
	Closed() error
}

// Object is the loaded bytecode, as Lifecycle.Started sees it.
type Object struct {
	mgr     *manager.Manager
	core    bool
	uprobes *uprobeSet
	found   *foundSet // nil without node-wide discovery
}

// AttachUprobes attaches probes, uprobes of the object's programs, to the
// executable or library at path (Probe.Binary is ignored), for files the
// module finds itself (e.g. with package discover). Every probe attaches
// or none: an error is an *AttachError. release detaches them; it must be
// called before the Module's Close returns (Lifecycle.Closed).
func (o *Object) AttachUprobes(path string, probes []Probe) (release func() error, err error) {
	for _, p := range probes {
		if !isUprobe(p.Section) {
			return nil, &AttachError{Program: p.Program, Section: p.Section, Symbol: p.Symbol, Binary: path, Err: errors.New("not a uprobe")}
		}
	}
	return o.uprobes.attach(path, path, 0, probes)
}

// Program returns the loaded program called name. It is for programs the
// base does not attach (e.g. TC programs linked with link.AttachTCX),
// which is why it is a cilium/ebpf type; the caller closes the links it
// makes, not the program. Uprobe programs are attached with
// AttachUprobes instead.
func (o *Object) Program(name string) (*ebpf.Program, error) {
	if _, ok := o.uprobes.spec.Programs[name]; ok {
		return nil, fmt.Errorf("program %s is a uprobe: attach it with Object.AttachUprobes", name)
	}
	progs, ok, err := o.mgr.GetProgram(manager.ProbeIdentificationPair{EbpfFuncName: name})
	if err != nil || !ok || len(progs) == 0 || progs[0] == nil {
		return nil, fmt.Errorf("program %s is not loaded", name)
	}
	return progs[0], nil
}

// Map returns the loaded map called name, for state a module reads or
// changes itself besides the event and counter maps the base reads.
func (o *Object) Map(name string) (*ebpf.Map, error) {
	m, ok, err := o.mgr.GetMap(name)
	if err != nil || !ok || m == nil {
		return nil, fmt.Errorf("map %s is not loaded", name)
	}
	return m, nil
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

// Module is an sdk.Module made of a module's Hooks and the work every
// eBPF capture module shares: loading the right object through
// gojue/ebpfmanager, setting the filter constants, checking that every
// probe attached, reading ring buffers and perf event arrays, decoding into
// one reused sdk.Event with the module's Decode, routing it, and reporting
// the loss counters. Create it with New.
//
// Its methods follow the sdk.Module contract: Init, Start, Run (in its own
// goroutine), Stop (from any goroutine, while Run runs), Close. It also
// implements sdk.ProbeLister, with the probes the Hooks list when they are
// an sdk.ProbeLister too.
type Module struct {
	// Bytecode forces one of the objects; the zero value chooses by the
	// kernel's BTF. Set it before Start.
	Bytecode BytecodeMode

	hooks    Hooks
	logger   hclog.Logger
	settings sdk.Settings
	sink     sdk.Sink

	spec   *Spec
	mgr    *manager.Manager
	choice bytecodeChoice
	// opened: readers on the event maps, opened by Start before it attached
	// anything, for Run (guarded by mu).
	opened  []*source
	lostMap *ebpf.Map
	// behindMap is Spec.BehindMap, loaded; nil if none.
	behindMap *ebpf.Map
	counters  []counter

	// node-wide discovery (nodewide.go), and the cgroup filter it and
	// the bytecode apply (settings.Common)
	discovery *discover.Watcher
	found     *foundSet // the files it probes, for Object.FoundFiles
	// the uprobe programs (uprobes.go): the spec's, attached by Start,
	// and the releases of their files
	uprobes      *uprobeSet
	specUprobes  []Probe
	specReleases []func() error
	cgroupID     uint64
	cgroupLevel  uint32

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

// New returns the sdk.Module running h.
func New(h Hooks) *Module { return &Module{hooks: h} }

// Info returns the Hooks' Info.
func (m *Module) Info() sdk.Info { return m.hooks.Info() }

// Init keeps the logger, settings and sink, then calls the Hooks' Init. It
// loads nothing.
func (m *Module) Init(ctx context.Context, logger hclog.Logger, settings sdk.Settings, sink sdk.Sink) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m.logger, m.settings, m.sink = logger, settings, sink
	m.cgroupID, m.cgroupLevel = settings.Common.CgroupID, settings.Common.CgroupLevel
	return m.hooks.Init(ctx, logger, settings, sink)
}

// name is the module's name, for errors.
func (m *Module) name() string { return m.hooks.Info().Name }

// log returns the logger Init received (a null logger before Init).
func (m *Module) log() hclog.Logger {
	if m.logger == nil {
		return hclog.NewNullLogger()
	}
	return m.logger
}

// CORE reports whether Start loaded the CO-RE object.
func (m *Module) CORE() bool { return m.choice.core }

// loadedMap returns the loaded map called name, nil before Start or if
// absent.
func (m *Module) loadedMap(name string) *ebpf.Map {
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
	if m.mgr != nil {
		return errors.New("starting module: already started")
	}
	if m.logger == nil {
		m.logger = hclog.NewNullLogger()
	}
	spec, err := m.hooks.Spec()
	if err != nil {
		return fmt.Errorf("describing the bytecode of module %s: %w", m.name(), err)
	}
	if spec == nil {
		return fmt.Errorf("describing the bytecode of module %s: Spec returned nil", m.name())
	}
	m.spec = spec
	if m.settings.Common.BufferKiB == 0 {
		m.settings.Common.BufferKiB = spec.BufferKiB
	}
	if needsTracefs(spec.Probes) {
		if err := ensureTracefs(m.log()); err != nil {
			return err
		}
	}

	choice, err := chooseBytecode(spec, m.settings.Common.BTFFile, systemBTFPath, m.Bytecode)
	if err != nil {
		return err
	}
	m.choice = choice
	m.logger.Debug("bytecode chosen", "variant", choice.variant(), "reason", choice.reason)

	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(choice.object))
	if err != nil {
		return fmt.Errorf("reading the %s object of module %s: %w", choice.variant(), m.name(), err)
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
	if err := precheckProbes(cs, managerProbes(spec.Probes), spec.ProbesLater); err != nil {
		return err
	}
	// The uprobes are ebpfbase's (uprobes.go), the other probes
	// ebpfmanager's.
	var uprobes, others []Probe
	for _, p := range spec.Probes {
		if isUprobe(p.Section) {
			uprobes = append(uprobes, p)
		} else {
			others = append(others, p)
		}
	}
	opts.ExcludedEbpfFuncs = uprobePrograms(cs)

	mgr := &manager.Manager{Probes: managerProbes(others)}
	if err := mgr.InitWithOptions(bytes.NewReader(choice.object), opts); err != nil {
		cleanupFailedInit(mgr)
		return fmt.Errorf("loading the %s object of module %s: %w", choice.variant(), m.name(), trimManagerError(err))
	}
	stop := func(err error) error {
		_ = mgr.Stop(manager.CleanAll)
		return err
	}
	find := func(kind, name string) (*ebpf.Map, error) {
		em, ok, err := mgr.GetMap(name)
		if err != nil || !ok {
			return nil, fmt.Errorf("finding %s map %s of module %s: not loaded", kind, name, m.name())
		}
		return em, nil
	}
	eventMaps := make([]*ebpf.Map, 0, len(eventNames))
	for _, name := range eventNames {
		em, err := find("event", name)
		if err != nil {
			return stop(err)
		}
		eventMaps = append(eventMaps, em)
	}
	if spec.LostCounterMap != "" {
		em, err := find("counter", spec.LostCounterMap)
		if err != nil {
			return stop(err)
		}
		m.lostMap = em
	}
	m.behindMap = nil
	if spec.BehindMap != "" {
		em, err := find("host-behind", spec.BehindMap)
		if err != nil {
			return stop(err)
		}
		if em.Type() != ebpf.Array || em.ValueSize() != 4 || em.MaxEntries() < 1 {
			return stop(fmt.Errorf("host-behind map %s of module %s: want an array of 32-bit values, have %s of %d-byte values", spec.BehindMap, m.name(), em.Type(), em.ValueSize()))
		}
		m.behindMap = em
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
	opened, err := m.openSources(eventMaps, eventNames)
	if err != nil {
		return stop(err)
	}
	m.uprobes, err = newUprobeSet(cs, func(name string) (*ebpf.Map, error) { return find("object's", name) }, opts.VerifierOptions.Programs)
	if err != nil {
		closeSources(opened)
		return stop(err)
	}
	if err := checkAttached(mgr.Probes, mgr.Start()); err != nil {
		closeSources(opened)
		return stop(errors.Join(err, m.closeUprobes()))
	}
	if err := m.attachSpecUprobes(uprobes); err != nil {
		closeSources(opened)
		return stop(errors.Join(err, m.closeUprobes()))
	}
	m.mgr = mgr
	if err := m.startNodeWide(spec); err != nil {
		m.mgr = nil
		closeSources(opened)
		return stop(errors.Join(err, m.closeUprobes()))
	}
	m.mu.Lock()
	m.opened = opened
	m.mu.Unlock()
	if lc, ok := m.hooks.(Lifecycle); ok {
		if err := lc.Started(&Object{mgr: mgr, core: choice.core, uprobes: m.uprobes, found: m.found}); err != nil {
			return errors.Join(err, m.Close())
		}
	}
	m.logger.Info("module started", "bytecode", choice.variant(), "probes", len(mgr.Probes)+len(m.specUprobes), "uprobe_multi", m.uprobes.multi())
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
	var errs []error
	if mgr := m.mgr; mgr != nil {
		// The three detach side by side: each waits for the kernel
		// (uprobes.go), and SIGINT must end the host within 2 s.
		began := time.Now()
		var wg sync.WaitGroup
		var uerr, merr error
		var tookNodeWide, tookUprobes time.Duration
		wg.Add(2)
		go func() { defer wg.Done(); m.stopNodeWide(); tookNodeWide = time.Since(began) }()
		go func() { defer wg.Done(); uerr = m.closeUprobes(); tookUprobes = time.Since(began) }()
		merr = mgr.Stop(manager.CleanAll)
		tookOthers := time.Since(began)
		wg.Wait()
		m.mgr = nil
		m.uprobes = nil
		if merr != nil && !errors.Is(merr, manager.ErrManagerNotInitialized) {
			errs = append(errs, fmt.Errorf("detaching the probes of module %s: %w", m.name(), merr))
		}
		if uerr != nil {
			errs = append(errs, fmt.Errorf("detaching the uprobes of module %s: %w", m.name(), uerr))
		}
		m.log().Debug("probes detached", "took", time.Since(began).Round(time.Millisecond).String(),
			"node_wide", tookNodeWide.Round(time.Millisecond).String(), "uprobes", tookUprobes.Round(time.Millisecond).String(),
			"others", tookOthers.Round(time.Millisecond).String())
	}
	if lc, ok := m.hooks.(Lifecycle); ok {
		errs = append(errs, lc.Closed())
	}
	return errors.Join(errs...)
}

// Probes lists the probes Start attached (sdk.ProbeLister), then those the
// Hooks list if they are an sdk.ProbeLister: the host logs them so an
// operator sees which binaries and symbols are watched.
func (m *Module) Probes() []sdk.ProbeInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mgr == nil {
		return nil
	}
	var out []sdk.ProbeInfo
	for _, p := range m.specUprobes {
		kind, _, _ := strings.Cut(p.Section, "/")
		out = append(out, sdk.ProbeInfo{Program: p.Program, Kind: kind, Target: p.Symbol, Binary: p.Binary})
	}
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
	if pl, ok := m.hooks.(sdk.ProbeLister); ok {
		out = append(out, pl.Probes()...)
	}
	return out
}

// attachSpecUprobes attaches the spec's uprobes, binary by binary.
func (m *Module) attachSpecUprobes(probes []Probe) error {
	var binaries []string
	for _, p := range probes {
		if !slices.Contains(binaries, p.Binary) {
			binaries = append(binaries, p.Binary)
		}
	}
	for _, b := range binaries {
		var mine []Probe
		for _, p := range probes {
			if p.Binary == b {
				mine = append(mine, p)
			}
		}
		release, err := m.uprobes.attach(b, b, 0, mine)
		if err != nil {
			return err
		}
		m.specReleases = append(m.specReleases, release)
		m.specUprobes = append(m.specUprobes, mine...)
	}
	return nil
}

// closeUprobes detaches the spec's uprobes, files side by side, then
// frees the uprobe programs once discovery has released its files too
// (the programs stay loaded while a link holds them anyway).
func (m *Module) closeUprobes() error {
	if m.uprobes == nil {
		return nil
	}
	errs := make([]error, len(m.specReleases))
	var wg sync.WaitGroup
	for i, r := range m.specReleases {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r() }()
	}
	wg.Wait()
	m.mu.Lock()
	m.specReleases, m.specUprobes = nil, nil
	m.mu.Unlock()
	m.uprobes.close()
	return errors.Join(errs...)
}
