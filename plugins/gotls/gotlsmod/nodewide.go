package gotlsmod

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/link"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/discover"
)

// startDiscovery watches for Go executables started after Start (package
// discover: an exec tracepoint, every process's executable offered once
// per file) and probes each one linking crypto/tls whose release has the
// layout the probes were loaded with.
func (m *Module) startDiscovery(obj *ebpfbase.Object) error {
	w, err := discover.Start(discover.Config{
		Executables: true,
		Known:       m.Targets(),
		Probe:       func(c discover.Candidate) (func() error, error) { return m.probeFound(obj, c) },
		Logger:      m.logger.Named("discovery"),
	})
	if err != nil {
		return fmt.Errorf("starting the discovery of Go programs started later: %w", err)
	}
	m.watcher = w
	return nil
}

// probeFound attaches the mode's probes to the executable c when it is a
// Go program linking crypto/tls that the loaded layout reads.
func (m *Module) probeFound(obj *ebpfbase.Object, c discover.Candidate) (func() error, error) {
	if !c.Exe {
		return nil, discover.ErrSkip
	}
	b, err := safeInspect(c.Path)
	switch {
	case errors.Is(err, ErrUnsupported):
		m.logger.Warn("leaving out a Go program the module cannot probe", "path", c.Name, "pid", c.PID, "problem", err)
		return nil, discover.ErrSkip
	case err != nil:
		return nil, discover.ErrSkip // not Go, or no crypto/tls
	}
	l, ok := layoutFor(b.Release)
	if !ok && m.override != nil {
		l, ok = layoutFor(*m.override)
	}
	if !ok || l != m.layout {
		m.logger.Warn("leaving out a Go program of a release whose offsets the module does not know", "path", c.Name, "pid", c.PID, "go", b.GoVersion)
		return nil, discover.ErrSkip
	}
	if m.mode == ModeKeylog && b.KeyLog.Entry == 0 {
		m.logger.Warn("leaving out a Go program without "+symKeyLog, "path", c.Name, "pid", c.PID, "go", b.GoVersion)
		return nil, discover.ErrSkip
	}
	ex, err := link.OpenExecutable(c.Path)
	if err != nil {
		return nil, fmt.Errorf("opening %s (pid %d): %w", c.Name, c.PID, err)
	}
	var links []link.Link
	release := func() error {
		var errs []error
		for _, l := range links {
			errs = append(errs, l.Close())
		}
		return errors.Join(errs...)
	}
	for _, p := range targetProbes(0, b, m.mode) {
		prog, err := obj.Program(p.Program)
		if err == nil {
			var l link.Link
			l, err = ex.Uprobe(p.Symbol, prog, &link.UprobeOptions{Address: p.Offset})
			links = append(links, l)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("attaching uprobe %s in %s (pid %d, program %s): %w", p.Symbol, c.Name, c.PID, p.Program, err), release())
		}
	}
	return release, nil
}

// stopDiscovery releases what discovery probed.
func (m *Module) stopDiscovery() error {
	if m.watcher == nil {
		return nil
	}
	st := m.watcher.Stats()
	err := m.watcher.Close()
	m.watcher = nil
	m.logger.Info("discovery of Go programs done", "files_probed", st.Probed, "released", st.Released, "attach_failed", st.Failed)
	return err
}
