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
		if err := ebpfbase.CheckObject(spec, cs); err != nil {
			t.Error(err)
		}
	}
	if vs, ok := cs.Variables[constSSLOnly]; !ok || !vs.Constant() {
		t.Errorf("constant %s missing or not const", constSSLOnly)
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf || em.MaxEntries != 16<<20 {
		t.Errorf("map %s is %v, want a 16 MiB ring buffer", ebpfbase.EventsMap, em)
	}
	if lm := cs.Maps[ebpfbase.LostMap]; lm == nil || lm.Type != ebpf.PerCPUArray {
		t.Errorf("map %s missing or not a per-CPU array", ebpfbase.LostMap)
	}
}
