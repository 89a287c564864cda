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

// TestObject checks what Start relies on, for both sets of socket
// tracepoints: every program a probe names in its section, the maps, the
// filter constants, the counters (ebpfbase.CheckObject), and a 16 MiB ring
// buffer by default.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	var symbols []string
	for _, p := range probeDefs {
		symbols = append(symbols, p.Symbol)
	}
	m.targets = []target{{Path: "/lib/libgnutls.so.30", Symbols: symbols}}
	for _, tc := range []struct {
		sockPath string
		conn     int
	}{{"/", len(tlsrecord.SockTracepoints)}, {"/nonexistent", len(tlsrecord.Syscalls)}} {
		spec, err := m.spec(tc.sockPath)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(probeDefs) + tc.conn; len(spec.Probes) != want {
			t.Errorf("sock tracepoints at %s: %d probes, want %d", tc.sockPath, len(spec.Probes), want)
		}
		if err := ebpfbase.CheckObject(spec, cs); err != nil {
			t.Error(err)
		}
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf || em.MaxEntries != 16<<20 {
		t.Errorf("map %s is %v, want a 16 MiB ring buffer", ebpfbase.EventsMap, em)
	}
}
