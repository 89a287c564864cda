package gotlsmod

import (
	"errors"
	"fmt"

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
		CgroupID:    m.cgroupID,
		CgroupLevel: m.cgroupLevel,
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
	release, err := obj.AttachUprobes(c.Path, targetProbes(0, b, m.mode))
	if err != nil {
		return nil, fmt.Errorf("probing %s (pid %d): %w", c.Name, c.PID, err)
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
