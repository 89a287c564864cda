package zshmod

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/zsh/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
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

// TestObjects checks each committed object against the Spec Start will
// use (programs, sections, constants, maps), and that the non-CO-RE one
// has no CO-RE relocation.
func TestObjects(t *testing.T) {
	m := New()
	if err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{}, nil); err != nil {
		harness.SkipOrFail(t, "no zsh to read symbols from: %v", err)
	}
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(o.obj))
			if err != nil {
				t.Fatal(err)
			}
			if err := ebpfbase.CheckObject(spec, cs); err != nil {
				t.Error(err)
			}
			wantEvents := ebpf.RingBuf
			if o.name != "CO-RE" {
				wantEvents = ebpf.PerfEventArray
				for name, p := range cs.Programs {
					for _, ins := range p.Instructions {
						if btf.CORERelocationMetadata(&ins) != nil {
							t.Errorf("program %s of the non-CO-RE object has a CO-RE relocation at %v", name, ins)
							break
						}
					}
				}
			}
			if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != wantEvents {
				t.Errorf("map %s is not a %s", ebpfbase.EventsMap, wantEvents)
			}
		})
	}
}
