package ebpfbase

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	manager "github.com/gojue/ebpfmanager"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

// ErrNotAttached is wrapped by an AttachError when the probe is not running
// after Start and ebpfmanager recorded no cause.
var ErrNotAttached = errors.New("probe is not attached")

// AttachError says which probe could not be attached and why. Start
// returns it (wrapped) for the first probe that failed.
type AttachError struct {
	Program string // the eBPF program (EbpfFuncName)
	Section string // its ELF section, e.g. "uretprobe/readline"
	Symbol  string // the function attached to (AttachToFuncName)
	Binary  string // the binary holding Symbol (BinaryPath), "" for kernel hooks
	Err     error
}

func (e *AttachError) Error() string {
	kind, _, _ := strings.Cut(e.Section, "/")
	if e.Binary != "" {
		return fmt.Sprintf("attaching %s %s in %s (program %s): %v", kind, e.Symbol, e.Binary, e.Program, e.Err)
	}
	target := e.Symbol
	if target == "" {
		target = e.Section
	}
	return fmt.Sprintf("attaching %s %s (program %s): %v", kind, target, e.Program, e.Err)
}

func (e *AttachError) Unwrap() error { return e.Err }

func newAttachError(p *manager.Probe, err error) *AttachError {
	return &AttachError{Program: p.EbpfFuncName, Section: p.Section, Symbol: p.AttachToFuncName, Binary: p.BinaryPath, Err: err}
}

func isUprobe(section string) bool {
	return strings.HasPrefix(section, "uprobe/") || strings.HasPrefix(section, "uretprobe/")
}

// precheckProbes refuses, before anything is loaded, a probe whose program
// is not in the object, or a uprobe whose binary does not define its
// symbol; and no probe at all unless later (Spec.ProbesLater).
func precheckProbes(cs *ebpf.CollectionSpec, probes []*manager.Probe, later bool) error {
	if len(probes) == 0 && !later {
		return errors.New("describing probes: the module has none")
	}
	for _, p := range probes {
		if p == nil {
			return errors.New("describing probes: nil probe")
		}
		if _, ok := cs.Programs[p.EbpfFuncName]; !ok {
			return newAttachError(p, fmt.Errorf("program %q is not in the object", p.EbpfFuncName))
		}
		if !isUprobe(p.Section) || p.UprobeOffset != 0 || p.UAddress != 0 {
			continue
		}
		if p.BinaryPath == "" {
			return newAttachError(p, errors.New("no binary path"))
		}
		if err := elfsym.CheckSymbol(p.BinaryPath, p.AttachToFuncName); err != nil {
			return newAttachError(p, err)
		}
	}
	return nil
}

// checkAttached returns an *AttachError for the first probe that is not
// running after Manager.Start, which ignores attach errors.
func checkAttached(probes []*manager.Probe, startErr error) error {
	for _, p := range probes {
		if p.IsRunning() {
			continue
		}
		cause := p.GetLastError()
		if cause == nil {
			cause = startErr
		}
		if cause == nil {
			cause = ErrNotAttached
		}
		return newAttachError(p, cause)
	}
	if startErr != nil {
		return fmt.Errorf("starting probes: %w", startErr)
	}
	return nil
}
