package nsprmod

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/plugins/nspr/bpf"
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
// the maps, the filter constants and ssl_only's, a 16 MiB ring buffer by
// default, and the counters' map with room for every index.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.targets = []target{{Path: "/lib/libnspr4.so", Symbols: probedSymbols()}}
	for _, sockPath := range []string{"/", "/nonexistent"} {
		sockTracepointPath = sockPath
		spec, err := m.Spec()
		sockTracepointPath = tlsrecord.SockTracepointPath
		if err != nil {
			t.Fatal(err)
		}
		want := len(probeDefs) + len(tlsrecord.SockTracepoints)
		if sockPath != "/" {
			want = len(probeDefs) + len(tlsrecord.Syscalls)
		}
		if len(spec.Probes) != want {
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
		for name := range spec.Constants {
			if vs, ok := cs.Variables[name]; !ok || !vs.Constant() {
				t.Errorf("constant %s missing or not const", name)
			}
		}
		for _, c := range spec.Counters {
			if sm := cs.Maps[c.Map]; sm == nil || sm.Type != ebpf.PerCPUArray || sm.ValueSize != 8 || c.Index >= sm.MaxEntries {
				t.Errorf("counter %+v outside map %v", c, sm)
			}
		}
	}
	for _, v := range []string{ebpfbase.ConstTargetPID, ebpfbase.ConstTargetUID, ebpfbase.ConstTargetComm, constSSLOnly} {
		if vs, ok := cs.Variables[v]; !ok || !vs.Constant() {
			t.Errorf("constant %s missing or not const", v)
		}
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf || em.MaxEntries != 16<<20 {
		t.Errorf("map %s is %v, want a 16 MiB ring buffer", ebpfbase.EventsMap, em)
	}
	if lm := cs.Maps[ebpfbase.LostMap]; lm == nil || lm.Type != ebpf.PerCPUArray {
		t.Errorf("map %s missing or not a per-CPU array", ebpfbase.LostMap)
	}
}
