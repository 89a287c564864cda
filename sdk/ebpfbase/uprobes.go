package ebpfbase

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// uprobeSet owns the object's uprobe programs and attaches them file by
// file, for the spec's binaries and for every file node-wide discovery
// finds.
//
// On kernels with uprobe_multi links (6.6+) the programs are loaded for
// that attach type and a file gets one link per program, holding all the
// program's symbols there; otherwise each probe is a perf-event uprobe.
// The difference is the cost of detaching: the kernel closes a
// perf-event uprobe under its global event_mutex, with an RCU grace
// period each, one after the other (about 70 ms a probe here, so 1 s for
// the dozen probes of one libssl, 20 s for twenty of them), where a
// uprobe_multi link costs one grace period for all its probes and links
// close side by side (measured on kernel 6.18, 10 files of 12 probes:
// 8.5 s closed one by one as perf events, 5.5 s in parallel, 0.03 to
// 0.08 s as uprobe_multi links closed in parallel).
//
// The programs share every map of the object loaded by ebpfmanager
// (CollectionOptions.MapReplacements), so their records and counters are
// the same. Methods are safe for concurrent use.
type uprobeSet struct {
	spec *ebpf.CollectionSpec // the uprobe programs, maps matching maps
	maps map[string]*ebpf.Map // the loaded maps, by name
	opts ebpf.ProgramOptions  // verifier options (btf_file)
	mu   sync.Mutex           // guards the fields below
	coll *ebpf.Collection     // nil until the first attach
	mode uprobeMode           // of coll
	live int                  // files attached, not yet released
	done bool                 // closed: nothing attaches any more
}

type uprobeMode uint8

const (
	modeMulti uprobeMode = iota // uprobe_multi links
	modePerf                    // one perf-event uprobe per probe
)

// isUprobeProgram reports whether the object's program p is a uprobe,
// by its section.
func isUprobeProgram(p *ebpf.ProgramSpec) bool {
	return p.Type == ebpf.Kprobe && isUprobe(p.SectionName)
}

// uprobePrograms returns the names of the uprobe programs of cs.
func uprobePrograms(cs *ebpf.CollectionSpec) []string {
	var out []string
	for name, p := range cs.Programs {
		if isUprobeProgram(p) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// newUprobeSet prepares the uprobe programs of cs to be loaded with the
// maps mapOf returns (every map of cs must be loaded). Nothing is loaded
// before the first attach.
func newUprobeSet(cs *ebpf.CollectionSpec, mapOf func(string) (*ebpf.Map, error), opts ebpf.ProgramOptions) (*uprobeSet, error) {
	spec := cs.Copy()
	for name, p := range spec.Programs {
		if !isUprobeProgram(p) {
			delete(spec.Programs, name)
		}
	}
	maps := make(map[string]*ebpf.Map, len(spec.Maps))
	for name, ms := range spec.Maps {
		m, err := mapOf(name)
		if err != nil {
			return nil, err
		}
		// The loaded map may have been resized (buffer_kib), its spec's
		// BTF-derived fields completed: the copy takes the map's.
		ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags = m.Type(), m.KeySize(), m.ValueSize(), m.MaxEntries(), m.Flags()
		maps[name] = m
	}
	return &uprobeSet{spec: spec, maps: maps, opts: opts}, nil
}

// load loads the programs for mode; u.mu is held.
func (u *uprobeSet) load(mode uprobeMode) error {
	spec := u.spec.Copy()
	for _, p := range spec.Programs {
		p.AttachType = ebpf.AttachNone
		if mode == modeMulti {
			p.AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: u.opts, MapReplacements: u.maps})
	if err != nil {
		return fmt.Errorf("loading the uprobe programs: %w", trimManagerError(err))
	}
	if u.coll != nil {
		u.coll.Close()
	}
	u.coll, u.mode = coll, mode
	return nil
}

// attach attaches probes (all uprobes, of one file; Binary is ignored)
// to the file at path, which name and pid describe for errors. release
// detaches them all, its links side by side.
func (u *uprobeSet) attach(path, name string, pid uint32, probes []Probe) (release func() error, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil, errors.New("attaching uprobes: the module is closing")
	}
	if u.coll == nil {
		// uprobe_multi when the kernel loads programs of that type
		// (an older kernel refuses them or the first link below).
		if err := u.load(modeMulti); err != nil {
			if err := u.load(modePerf); err != nil {
				return nil, err
			}
		}
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", describe(name, pid), err)
	}
	links, err := u.link(ex, name, pid, probes)
	if errors.Is(err, ebpf.ErrNotSupported) && u.mode == modeMulti && u.live == 0 {
		// No uprobe_multi links here: the perf-event uprobes then.
		if lerr := u.load(modePerf); lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		links, err = u.link(ex, name, pid, probes)
	}
	if err != nil {
		return nil, err
	}
	u.live++
	var once sync.Once
	var rerr error
	return func() error {
		once.Do(func() {
			rerr = closeLinks(links)
			u.mu.Lock()
			u.live--
			u.mu.Unlock()
		})
		return rerr
	}, nil
}

// multiKey groups the probes one uprobe_multi link takes.
type multiKey struct {
	program  string
	ret      bool
	byOffset bool
}

// link makes the links of probes on ex in u.mode; u.mu is held. On error
// none is left.
func (u *uprobeSet) link(ex *link.Executable, name string, pid uint32, probes []Probe) ([]link.Link, error) {
	var links []link.Link
	// fail names the probes of one link: a uprobe_multi link's error
	// does not say which of its symbols failed.
	fail := func(g []Probe, err error) ([]link.Link, error) {
		_ = closeLinks(links)
		var syms []string
		for _, p := range g {
			if p.Symbol != "" {
				syms = append(syms, p.Symbol)
			} else {
				syms = append(syms, fmt.Sprintf("offset %#x", p.Offset))
			}
		}
		return nil, &AttachError{Program: g[0].Program, Section: g[0].Section, Symbol: strings.Join(syms, ","), Binary: describe(name, pid), Err: err}
	}
	prog := func(p Probe) (*ebpf.Program, error) {
		pr := u.coll.Programs[p.Program]
		if pr == nil {
			return nil, fmt.Errorf("program %q is not a uprobe of the object", p.Program)
		}
		return pr, nil
	}
	if u.mode == modePerf {
		for _, p := range probes {
			pr, err := prog(p)
			if err != nil {
				return fail([]Probe{p}, err)
			}
			opts := &link.UprobeOptions{Address: p.Offset}
			var l link.Link
			if strings.HasPrefix(p.Section, "uretprobe/") {
				l, err = ex.Uretprobe(p.Symbol, pr, opts)
			} else {
				l, err = ex.Uprobe(p.Symbol, pr, opts)
			}
			if err != nil {
				return fail([]Probe{p}, err)
			}
			links = append(links, l)
		}
		return links, nil
	}
	var keys []multiKey
	groups := map[multiKey][]Probe{}
	for _, p := range probes {
		k := multiKey{program: p.Program, ret: strings.HasPrefix(p.Section, "uretprobe/"), byOffset: p.Offset != 0}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], p)
	}
	for _, k := range keys {
		g := groups[k]
		pr, err := prog(g[0])
		if err != nil {
			return fail(g, err)
		}
		var syms []string
		opts := &link.UprobeMultiOptions{}
		for _, p := range g {
			if k.byOffset {
				opts.Addresses = append(opts.Addresses, p.Offset)
			} else {
				syms = append(syms, p.Symbol)
			}
		}
		var l link.Link
		if k.ret {
			l, err = ex.UretprobeMulti(syms, pr, opts)
		} else {
			l, err = ex.UprobeMulti(syms, pr, opts)
		}
		if err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				_ = closeLinks(links)
				return nil, err
			}
			return fail(g, err)
		}
		links = append(links, l)
	}
	return links, nil
}

// close frees the programs once every file is released.
func (u *uprobeSet) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	if u.coll != nil {
		u.coll.Close()
		u.coll = nil
	}
}

// multi reports whether the links are uprobe_multi ones (after the first
// attach).
func (u *uprobeSet) multi() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.coll != nil && u.mode == modeMulti
}

// closeLinks closes links side by side (see uprobeSet) and returns the
// first error.
func closeLinks(links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// describe names a file for errors: its path, and the process it was
// found in when not the spec's own.
func describe(name string, pid uint32) string {
	if pid == 0 {
		return name
	}
	return fmt.Sprintf("%s (pid %d)", name, pid)
}
