package ebpfbase

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/discover"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// NodeWide says whether Start gives a spec's uprobes node-wide reach.
type NodeWide uint8

const (
	// NodeWideAuto, without a pid filter, also probes every other file of
	// the kind the spec's uprobes are on, found in any process of the node
	// now or later (package discover): for a uprobe set on
	// /usr/lib/x86_64-linux-gnu/libssl.so.3, every file called
	// libssl.so[.*] some process maps (its own copy in a container
	// included) and every executable defining the set's first symbol
	// (OpenSSL linked statically); for one set on an executable (bash),
	// every copy of it (same name and GNU build id) a process runs. Each
	// gets the same programs on the symbols it defines. With a pid filter
	// it does nothing.
	NodeWideAuto NodeWide = iota
	// NodeWideOff probes the spec's binaries only.
	NodeWideOff
	// NodeWideCopies probes, besides the spec's binaries, only their
	// copies found node-wide (same name and GNU build id: a container's
	// copy of the host's libssl), for a module whose programs or
	// constants are those of one build (OpenSSL's key modes).
	NodeWideCopies
)

// Counters of node-wide discovery, reported with the loss counters.
const (
	// CounterFilesProbed is the number of files discovery probes now, an
	// information counter (sdk.InfoCounterPrefix), not a loss.
	CounterFilesProbed = sdk.InfoCounterPrefix + "discovery_files_probed"
	// CounterAttachFailed counts files found whose probes did not attach
	// (each logged with the reason): their processes are not captured.
	CounterAttachFailed = "discovery_attach_failed"
	// CounterFilesCapped counts files not probed because discovery already
	// probed discover.Config.MaxFiles.
	CounterFilesCapped = "discovery_files_capped"
)

// uprobeGroup is the uprobes of a spec on one binary: what discovery puts
// on every other file of its kind.
type uprobeGroup struct {
	binary   string
	library  func(base string) bool // nil for an executable
	buildID  []byte                 // an executable's: only copies of it are probed
	required string                 // the first symbol: a file lacking it is not of the kind
	probes   []Probe
}

// uprobeGroups groups the symbol uprobes of probes by binary.
func uprobeGroups(probes []Probe) []*uprobeGroup {
	var out []*uprobeGroup
	for _, p := range probes {
		if !isUprobe(p.Section) || p.Binary == "" || p.Symbol == "" || p.Offset != 0 {
			continue
		}
		i := slices.IndexFunc(out, func(g *uprobeGroup) bool { return g.binary == p.Binary })
		if i < 0 {
			g := &uprobeGroup{binary: p.Binary, required: p.Symbol}
			base := filepath.Base(p.Binary)
			if j := strings.Index(base, ".so"); j > 0 {
				g.library = libfind.Soname(base[:j+3])
			}
			g.buildID = buildID(p.Binary)
			out = append(out, g)
			i = len(out) - 1
		}
		out[i].probes = append(out[i].probes, p)
	}
	return out
}

// symbols returns the distinct symbols of the groups.
func symbols(groups []*uprobeGroup) []string {
	var out []string
	for _, g := range groups {
		for _, p := range g.probes {
			if !slices.Contains(out, p.Symbol) {
				out = append(out, p.Symbol)
			}
		}
	}
	return out
}

// startNodeWide starts discovery for the spec's uprobes unless the spec
// or a pid filter says not to, or there are none.
func (m *Module) startNodeWide(spec *Spec) error {
	if spec.NodeWide == NodeWideOff || m.settings.Common.PID != 0 {
		return nil
	}
	groups := uprobeGroups(spec.Probes)
	copies := spec.NodeWide == NodeWideCopies
	if len(groups) == 0 {
		return nil
	}
	m.found = &foundSet{}
	var known []string
	var libs []func(string) bool
	for _, g := range groups {
		known = append(known, g.binary)
		if g.library != nil {
			libs = append(libs, g.library)
		}
	}
	cfg := discover.Config{
		Executables: !copies || slices.ContainsFunc(groups, func(g *uprobeGroup) bool { return g.library == nil }),
		Probe:       func(c discover.Candidate) (func() error, error) { return m.probeFound(groups, c, copies) },
		Known:       known,
		CgroupID:    m.cgroupID,
		CgroupLevel: m.cgroupLevel,
		Logger:      m.log().Named("discovery"),
	}
	if len(libs) > 0 {
		cfg.Library = func(base string) bool {
			return slices.ContainsFunc(libs, func(f func(string) bool) bool { return f(base) })
		}
	}
	w, err := discover.Start(cfg)
	if err != nil {
		return fmt.Errorf("starting the node-wide discovery of module %s: %w", m.name(), err)
	}
	m.discovery = w
	st := w.Stats()
	m.log().Info("node-wide discovery started: files of the probed kinds in any process, now and later, are probed",
		"kinds", strings.Join(known, ","), "files_probed", st.Probed, "attach_failed", st.Failed)
	return nil
}

// probeFound attaches, to the file c, the uprobes of the first group of
// its kind (a library of the group's name, or any file defining the
// group's first symbol; with copies, a copy of the group's binary) on
// every symbol the file defines.
func (m *Module) probeFound(groups []*uprobeGroup, c discover.Candidate, copies bool) (func() error, error) {
	var cands []*uprobeGroup
	for _, g := range groups {
		switch {
		case copies:
			// only a copy of the group's own binary
			if g.buildID != nil && filepath.Base(c.Name) == filepath.Base(g.binary) && bytes.Equal(buildID(c.Path), g.buildID) {
				cands = append(cands, g)
			}
		case g.library != nil && (c.Exe || g.library(filepath.Base(c.Name))):
			// a library, or an executable linking it statically
			cands = append(cands, g)
		case g.library == nil && c.Exe && filepath.Base(c.Name) == filepath.Base(g.binary) &&
			g.buildID != nil && bytes.Equal(buildID(c.Path), g.buildID):
			// a copy of the executable (a module's constants may be
			// this build's addresses)
			cands = append(cands, g)
		}
	}
	if len(cands) == 0 {
		return nil, discover.ErrSkip
	}
	defined, err := elfsym.Inspect(c.Path, symbols(cands))
	if err != nil {
		return nil, discover.ErrSkip
	}
	i := slices.IndexFunc(cands, func(g *uprobeGroup) bool { return defined[g.required] })
	if i < 0 {
		return nil, discover.ErrSkip
	}
	g := cands[i]
	var probes []Probe
	for _, p := range g.probes {
		if defined[p.Symbol] {
			probes = append(probes, p)
		}
	}
	release, err := m.uprobes.attach(c.Path, c.Name, c.PID, probes)
	if err != nil {
		return nil, err
	}
	forget, err := m.found.add(c.Path, FoundFile{Name: c.Name, PID: c.PID, Binary: g.binary})
	if err != nil {
		return nil, errors.Join(err, release())
	}
	return func() error { forget(); return release() }, nil
}

// buildID returns the GNU build id of the ELF file path, nil if it has
// none or cannot be read.
func buildID(path string) []byte {
	f, err := elfsym.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sec := f.Section(".note.gnu.build-id")
	if sec == nil {
		return nil
	}
	data, err := sec.Data()
	if err != nil || len(data) < 16 {
		return nil
	}
	return data
}

// publishDiscovery reports discovery's counts with the loss counters.
func (m *Module) publishDiscovery() {
	if m.discovery == nil || m.sink == nil {
		return
	}
	st := m.discovery.Stats()
	m.sink.SetCounter(CounterFilesProbed, uint64(st.Probed))
	m.sink.SetCounter(CounterAttachFailed, st.Failed)
	m.sink.SetCounter(CounterFilesCapped, st.Capped)
}

// stopNodeWide releases what discovery probed, logging its counts.
func (m *Module) stopNodeWide() {
	w := m.discovery
	if w == nil {
		return
	}
	m.discovery = nil
	st := w.Stats()
	if err := w.Close(); err != nil {
		m.log().Warn("releasing the files node-wide discovery probed", "error", err)
	}
	m.log().Info("node-wide discovery done", "files_probed", st.Probed, "released", st.Released,
		"attach_failed", st.Failed, "capped", st.Capped, "execs", st.Execs, "dlopens", st.Dlopens,
		"loaders_watched", st.Loaders, "max_exec_to_probed", st.MaxLatency.String())
}
