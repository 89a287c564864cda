package bashmod

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ecaphost/ecaphost/plugins/bash/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/shellrec"
)

var objects = []struct {
	name string
	obj  []byte
}{
	{"CO-RE", bpf.Core},
	{"non-CO-RE", bpf.NonCore},
}

// TestLayout proves that the records of both objects have the layout
// shellrec decodes, with this module's lineMax.
func TestLayout(t *testing.T) {
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			if err := ebpfbase.CheckLayout(o.obj, "shell_event", shellrec.Record(lineMax)); err != nil {
				t.Error(err)
			}
			if err := ebpfbase.CheckLayout(o.obj, "ecap_hdr", ebpfbase.Header{}); err != nil {
				t.Error(err)
			}
		})
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
