package gotlsmod

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/plugins/gotls/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestLayout proves that the Go twins of the object's records have their
// C layouts: tlsrecord.Record (struct tls_data_event) and keyRecord
// (struct gotls_key_event).
func TestLayout(t *testing.T) {
	if err := tlsrecord.CheckLayout(bpf.Core); err != nil {
		t.Error(err)
	}
	if err := ebpfbase.CheckLayout(bpf.Core, "gotls_key_event", keyRecord{}); err != nil {
		t.Error(err)
	}
	if keyRecordSize != unsafe.Sizeof(keyRecord{}) {
		t.Errorf("keyRecordSize %d, keyRecord is %d bytes", keyRecordSize, unsafe.Sizeof(keyRecord{}))
	}
}

// TestObject checks what Start relies on, in both modes: every program a
// probe names, the maps and counters, the constants Spec sets.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	target := &goBinary{Path: "/usr/bin/true", Write: goFunc{Entry: 0x100}, Read: goFunc{Entry: 0x200, Returns: []uint64{0x210, 0x220}},
		Close: goFunc{Entry: 0x300}, KeyLog: goFunc{Entry: 0x400}}
	for mode, want := range map[string]int{ModeText: 5, ModeKeylog: 1} {
		m := New()
		m.mode, m.targets, m.layout, m.inited = mode, []*goBinary{target}, layouts[0].layout, true
		spec, err := m.Spec()
		if err != nil {
			t.Fatal(err)
		}
		if len(spec.Probes) != want {
			t.Errorf("mode %s: %d probes, want %d", mode, len(spec.Probes), want)
		}
		for _, p := range spec.Probes {
			if p.Offset == 0 || p.Binary != target.Path {
				t.Errorf("mode %s: probe %s at %#x in %q", mode, p.Program, p.Offset, p.Binary)
			}
		}
		if err := ebpfbase.CheckObject(spec, cs); err != nil {
			t.Errorf("mode %s: %v", mode, err)
		}
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf || em.MaxEntries != 16<<20 {
		t.Errorf("map %s is %v, want a 16 MiB ring buffer", ebpfbase.EventsMap, em)
	}
	if sm := cs.Maps[statsMap]; sm == nil || sm.Type != ebpf.PerCPUArray || sm.MaxEntries <= statKeysLost {
		t.Errorf("map %s is %v", statsMap, sm)
	}
}
