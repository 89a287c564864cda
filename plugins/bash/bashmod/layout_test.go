package bashmod

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ecaphost/ecaphost/plugins/bash/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

var objects = []struct {
	name string
	obj  []byte
}{
	{"CO-RE", bpf.Core},
	{"non-CO-RE", bpf.NonCore},
}

// TestLayout proves that record, the Go side of struct bash_event, has
// the C layout in both objects, and that the decoder's offsets are right.
func TestLayout(t *testing.T) {
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			if err := ebpfbase.CheckLayout(o.obj, "bash_event", record{}); err != nil {
				t.Error(err)
			}
			if err := ebpfbase.CheckLayout(o.obj, "ecap_hdr", ebpfbase.Header{}); err != nil {
				t.Error(err)
			}
		})
	}
	var r record
	if unsafe.Offsetof(r.Status) != offStatus || unsafe.Offsetof(r.Line) != offLine {
		t.Errorf("decoder offsets %d/%d, record has %d/%d", offStatus, offLine, unsafe.Offsetof(r.Status), unsafe.Offsetof(r.Line))
	}
}

// TestObjects checks what Start relies on: programs, maps and filter
// constants present; ring buffer in the CO-RE object, perf event array in
// the other; no CO-RE relocation in the non-CO-RE object.
func TestObjects(t *testing.T) {
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(o.obj))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"uprobe_rl_newline", "uprobe_parse_command"} {
				if _, ok := cs.Programs[p]; !ok {
					t.Errorf("program %s missing", p)
				}
			}
			for _, v := range []string{ebpfbase.ConstTargetPID, ebpfbase.ConstTargetUID, ebpfbase.ConstTargetComm} {
				if vs, ok := cs.Variables[v]; !ok || !vs.Constant() {
					t.Errorf("filter constant %s missing or not const", v)
				}
			}
			if cs.Maps[ebpfbase.LostMap] == nil || cs.Maps[ebpfbase.LostMap].Type != ebpf.PerCPUArray {
				t.Errorf("map %s missing or not a per-CPU array", ebpfbase.LostMap)
			}
			wantEvents, core := ebpf.RingBuf, o.name == "CO-RE"
			if !core {
				wantEvents = ebpf.PerfEventArray
			}
			if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != wantEvents {
				t.Errorf("map %s is not a %s", ebpfbase.EventsMap, wantEvents)
			}
			if core {
				return
			}
			for name, p := range cs.Programs {
				for _, ins := range p.Instructions {
					if btf.CORERelocationMetadata(&ins) != nil {
						t.Errorf("program %s of the non-CO-RE object has a CO-RE relocation at %v", name, ins)
						break
					}
				}
			}
		})
	}
}
