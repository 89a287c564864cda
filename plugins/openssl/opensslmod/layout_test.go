package opensslmod

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/plugins/openssl/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestLayout proves that tlsrecord.Record, the Go side of struct
// tls_data_event, has the C layout in the object.
func TestLayout(t *testing.T) {
	if err := tlsrecord.CheckLayout(bpf.Core); err != nil {
		t.Error(err)
	}
}

// TestObject checks what Start relies on: every program a probe names,
// the maps, the filter constants, a 16 MiB ring buffer by default, and the
// counters' map with room for every index.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.targets = []target{{path: "/lib/libssl.so.3", symbols: []string{symWrite, symRead, symWriteEx, symReadEx, symSetFD, symSetRFD, symSetWFD, symFree}}}
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(probeDefs) + len(sockTracepoints); len(spec.Probes) != want {
		t.Errorf("%d probes, want %d", len(spec.Probes), want)
	}
	uids := map[string]bool{}
	for _, p := range spec.Probes {
		ps, ok := cs.Programs[p.EbpfFuncName]
		if !ok {
			t.Errorf("program %s missing", p.EbpfFuncName)
			continue
		}
		if ps.SectionName != p.Section {
			t.Errorf("program %s is in section %s, the probe says %s", p.EbpfFuncName, ps.SectionName, p.Section)
		}
		id := p.EbpfFuncName + "/" + p.UID
		if uids[id] {
			t.Errorf("probe %s declared twice", id)
		}
		uids[id] = true
	}
	for _, v := range []string{ebpfbase.ConstTargetPID, ebpfbase.ConstTargetUID, ebpfbase.ConstTargetComm} {
		if vs, ok := cs.Variables[v]; !ok || !vs.Constant() {
			t.Errorf("filter constant %s missing or not const", v)
		}
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf || em.MaxEntries != 16<<20 {
		t.Errorf("map %s is %v, want a 16 MiB ring buffer", ebpfbase.EventsMap, em)
	}
	if lm := cs.Maps[ebpfbase.LostMap]; lm == nil || lm.Type != ebpf.PerCPUArray {
		t.Errorf("map %s missing or not a per-CPU array", ebpfbase.LostMap)
	}
	sm := cs.Maps[statsMap]
	if sm == nil || sm.Type != ebpf.PerCPUArray || sm.ValueSize != 8 {
		t.Fatalf("map %s is %v, want a per-CPU array of 8-byte values", statsMap, sm)
	}
	for _, c := range spec.Counters {
		if c.Map != statsMap || c.Index >= sm.MaxEntries {
			t.Errorf("counter %+v outside map %s of %d entries", c, statsMap, sm.MaxEntries)
		}
	}
}
