package opensslmod

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unsafe"

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
	m.targets = []target{{Path: "/lib/libssl.so.3", Symbols: []string{symWrite, symRead, symWriteEx, symReadEx, symSetFD, symSetRFD, symSetWFD, symFree, symHandshake, symNew}}}
	old := sockTracepointPath
	sockTracepointPath = "/"
	defer func() { sockTracepointPath = old }()
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	// Text mode with the sock tracepoints: every probe but the two write
	// returns (writes are captured at entry) and SSL_new's (key modes).
	if want := len(probeDefs) - 3 + len(sockTracepoints); len(spec.Probes) != want {
		t.Errorf("%d probes, want %d", len(spec.Probes), want)
	}
	if err := ebpfbase.CheckObject(spec, cs); err != nil {
		t.Error(err)
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

// TestKeysLayout proves the Go twins of the key modes' structs against the
// object's BTF: the keys record, the layout constant, the packet meta.
func TestKeysLayout(t *testing.T) {
	for _, tc := range []struct {
		c       string
		goValue any
	}{
		{"openssl_keys_event", keysRecord{}},
		{"openssl_layout", layout{}},
		{"pcap_meta", pcapMeta{}},
		{"openssl_pending", pendingSession{}},
		{"tls_session_key", sessionKey{}},
	} {
		if err := ebpfbase.CheckLayout(bpf.Core, tc.c, tc.goValue); err != nil {
			t.Error(err)
		}
	}
	if keysRecordSize != 672 || pcapMetaSize != int(unsafe.Sizeof(pcapMeta{})) {
		t.Errorf("sizes: keys %d, meta %d", keysRecordSize, unsafe.Sizeof(pcapMeta{}))
	}
}

// TestKeysObject checks what the key modes rely on in the object: the
// constants they set (of the right size), one entry program per layout
// slot and symbol, the TC programs, the packets' ring buffer and the counters'
// map.
func TestKeysObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	k := &m.keys
	k.layouts = []targetLayout{{layout: layoutTable[0].layout}}
	k.iface = ifaceInfo{name: "lo", loopback: true, l2Len: 14}
	for name, v := range k.constants(ModePcap) {
		vs, ok := cs.Variables[name]
		if !ok || !vs.Constant() {
			t.Errorf("constant %s missing", name)
			continue
		}
		if err := cs.Copy().Variables[name].Set(v); err != nil {
			t.Errorf("setting %s: %v", name, err)
		}
	}
	m.mode = ModePcap
	m.targets = []target{
		{Path: "/a/libssl.so.3", Symbols: []string{symWrite, symRead, symWriteEx, symReadEx, symSetFD, symFree, symHandshake}},
		{Path: "/b/libssl.so.1.1", Symbols: []string{symWrite, symRead, symHandshake}},
		{Path: "/c/x", Symbols: []string{symWrite, symRead}},
		{Path: "/d/y", Symbols: []string{symWrite, symRead, symHandshake}},
	}
	// Without tcx the TC programs are ebpfmanager probes; with it, Start
	// attaches them itself.
	old := haveTCX
	defer func() { haveTCX = old }()
	haveTCX = func() bool { return true }
	if spec, err := m.Spec(); err != nil || !m.keys.tcx || slices.ContainsFunc(spec.Probes, func(p ebpfbase.Probe) bool { return p.Interface != "" }) {
		t.Errorf("with tcx: TC probes in the spec, or %v", err)
	}
	haveTCX = func() bool { return false }
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var tc, slot3 int
	for _, p := range spec.Probes {
		ps, ok := cs.Programs[p.Program]
		if !ok {
			t.Errorf("program %s missing", p.Program)
			continue
		}
		if ps.SectionName != p.Section {
			t.Errorf("program %s is in section %s, the probe says %s", p.Program, ps.SectionName, p.Section)
		}
		if p.Interface == "lo" {
			tc++
		}
		if strings.HasSuffix(p.Program, "_3") {
			slot3++
		}
	}
	// Slot 3's entry programs: SSL_do_handshake's and SSL_free's would be
	// (/d/y lacks SSL_free); SSL_write and SSL_read are the fallback's.
	if tc != 1 || slot3 != 1 {
		t.Errorf("%d TC probes (want egress only on lo), %d probes of slot 3 (want 1)", tc, slot3)
	}
	for i := range maxLayouts {
		name := progFallback + slotSuffix(i)
		if ps, ok := cs.Programs[name]; !ok || ps.Type != ebpf.Kprobe {
			t.Errorf("fallback program %s: %v", name, ps)
		}
		if slices.ContainsFunc(spec.Probes, func(p ebpfbase.Probe) bool { return p.Program == name }) {
			t.Errorf("fallback program %s in the spec: it is attached by the module while needed", name)
		}
	}
	if pm := cs.Maps[pendingMap]; pm == nil || pm.KeySize != 16 || pm.ValueSize != 16 {
		t.Errorf("map %s: %v", pendingMap, pm)
	}
	if !slices.Contains(spec.EventMaps, pcapEventsMap) || spec.Constants["openssl_capture_keys"] != uint32(1) {
		t.Errorf("spec %+v", spec)
	}
	if em := cs.Maps[pcapEventsMap]; em == nil || em.Type != ebpf.RingBuf {
		t.Errorf("map %s: %v", pcapEventsMap, em)
	}
	sm := cs.Maps[opensslStatsMap]
	for _, c := range spec.Counters {
		ms := cs.Maps[c.Map]
		if ms == nil || c.Index >= ms.MaxEntries {
			t.Errorf("counter %+v outside its map", c)
		}
	}
	if sm == nil || sm.MaxEntries != statFallbackUnkeyed+1 {
		t.Errorf("map %s: %v", opensslStatsMap, sm)
	}
	m.targets = append(m.targets, target{Path: "/e/z", Symbols: []string{symWrite, symRead}})
	if _, err := m.Spec(); err == nil {
		t.Error("5 binaries accepted in a key mode")
	}
}
