package ebpfbase

import (
	"strings"

	manager "github.com/gojue/ebpfmanager"
)

// Probe is one attachment of a program of the object: a uprobe or
// uretprobe on a function of a binary, a tracepoint or raw tracepoint, or
// a TC classifier on a network interface.
type Probe struct {
	// Section is the program's ELF section, e.g. "uprobe/readline" or
	// "tracepoint/syscalls/sys_enter_connect"; what comes before the
	// first "/" is the kind of attachment.
	Section string
	// Program is the eBPF function.
	Program string
	// Symbol and Binary are, for uprobes, the function attached to and
	// the file defining it.
	Symbol, Binary string
	// Offset, when not 0, attaches a uprobe at this offset of Binary's
	// file instead of at Symbol: e.g. at each return instruction of a Go
	// function, where a uretprobe would corrupt the goroutine's stack.
	Offset uint64
	// ID tells apart the attachments of one program (e.g. one per
	// binary); it may stay empty for a program attached once.
	ID string
	// Interface is, for TC classifiers (kernels without tcx), the network
	// interface; Ingress chooses its ingress hook over egress.
	Interface string
	Ingress   bool
}

// managerProbes converts probes for ebpfmanager.
func managerProbes(probes []Probe) []*manager.Probe {
	out := make([]*manager.Probe, len(probes))
	for i, p := range probes {
		mp := &manager.Probe{
			UID:              p.ID,
			Section:          p.Section,
			EbpfFuncName:     p.Program,
			AttachToFuncName: p.Symbol,
			BinaryPath:       p.Binary,
			UAddress:         p.Offset, // a file offset: no symbol lookup (stripped binaries)
			Ifname:           p.Interface,
		}
		if p.Interface != "" {
			mp.NetworkDirection = manager.Egress
			if p.Ingress {
				mp.NetworkDirection = manager.Ingress
			}
		}
		out[i] = mp
	}
	return out
}

// needsTracefs reports whether a probe is a tracepoint, which
// ebpfmanager attaches through tracefs.
func needsTracefs(probes []Probe) bool {
	for _, p := range probes {
		if strings.HasPrefix(p.Section, "tracepoint/") {
			return true
		}
	}
	return false
}
