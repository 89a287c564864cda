package gnutlsmod

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/examples/gnutls/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestLayout proves that tlsrecord's Go twin of struct tls_data_event has
// the layout the committed object was compiled with.
func TestLayout(t *testing.T) {
	if err := tlsrecord.CheckLayout(bpf.Core); err != nil {
		t.Error(err)
	}
}

// TestObject checks what Start relies on: every program a probe names (the
// uprobes, both sets of socket tracepoints), the maps, the filter
// constants, a 16 MiB ring buffer by default, the counters' map.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // program -> section
	for _, p := range probeDefs {
		want[p.Program] = p.Section
	}
	for _, tp := range tlsrecord.SockTracepoints {
		want["rtp_"+tp] = "raw_tracepoint/" + tp
	}
	for _, sc := range tlsrecord.Syscalls {
		want["tp_sys_enter_"+sc] = "tracepoint/syscalls/sys_enter_" + sc
	}
	for prog, section := range want {
		ps, ok := cs.Programs[prog]
		if !ok {
			t.Errorf("program %s missing", prog)
			continue
		}
		if ps.SectionName != section {
			t.Errorf("program %s is in section %s, the module says %s", prog, ps.SectionName, section)
		}
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
	sm := cs.Maps[tlsrecord.StatsMap]
	if sm == nil || sm.Type != ebpf.PerCPUArray || sm.ValueSize != 8 {
		t.Fatalf("map %s is %v, want a per-CPU array of 8-byte values", tlsrecord.StatsMap, sm)
	}
	for _, c := range tlsrecord.Counters() {
		if c.Index >= sm.MaxEntries {
			t.Errorf("counter %+v outside map %s of %d entries", c, sm.Name, sm.MaxEntries)
		}
	}
}
