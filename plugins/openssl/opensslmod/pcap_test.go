package opensslmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// sample builds a pcap_events sample: meta, then data, padded to 8 bytes
// as perf pads.
func sample(m pcapMeta, data []byte) []byte {
	b, _ := binary.Append(nil, binary.NativeEndian, m)
	b = append(b, data...)
	for len(b)%8 != 4 { // perf: u32 size + raw, a multiple of 8
		b = append(b, 0)
	}
	return b
}

func TestDecodePacket(t *testing.T) {
	data := []byte("0123456789")
	m := pcapMeta{TimestampNs: 5, Len: 10, Captured: 10, Ifindex: 1, Dir: 1, CPU: 1}
	got, gotData, err := decodePacket(sample(m, data))
	if err != nil || got != m || !bytes.Equal(gotData, data) {
		t.Fatalf("%+v %q %v", got, gotData, err)
	}
	for name, bad := range map[string][]byte{
		"short":                 make([]byte, pcapMetaSize-1),
		"captured beyond data":  sample(pcapMeta{Len: 100, Captured: 100}, data),
		"offset beyond len":     sample(pcapMeta{Len: 10, Captured: 10, Offset: 1}, data),
		"captured beyond len":   sample(pcapMeta{Len: 5, Captured: 10}, data),
		"huge offset, overflow": sample(pcapMeta{Len: 10, Captured: 10, Offset: 0xffffffff}, data),
	} {
		if _, _, err := decodePacket(bad); !errors.Is(err, ebpfbase.ErrShortRecord) && !errors.Is(err, errBadPacket) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAssembler(t *testing.T) {
	var out [][]byte
	emit := func(m pcapMeta, data []byte) { out = append(out, bytes.Clone(data)) }
	a := assembler{snapLen: 100}
	// A whole packet.
	a.add(pcapMeta{TimestampNs: 1, Len: 3, Captured: 3}, []byte("abc"), emit)
	// A packet in three samples, interleaved with another CPU's packet.
	a.add(pcapMeta{TimestampNs: 2, Len: 9, Captured: 3, CPU: 0}, []byte("def"), emit)
	a.add(pcapMeta{TimestampNs: 3, Len: 2, Captured: 2, CPU: 1}, []byte("zz"), emit)
	a.add(pcapMeta{TimestampNs: 2, Len: 9, Captured: 3, Offset: 3, CPU: 0}, []byte("ghi"), emit)
	a.add(pcapMeta{TimestampNs: 2, Len: 9, Captured: 3, Offset: 6, CPU: 0}, []byte("jkl"), emit)
	// Longer than the snap length: complete at the snap length.
	a.add(pcapMeta{TimestampNs: 4, Len: 200, Captured: 60}, bytes.Repeat([]byte("x"), 60), emit)
	a.add(pcapMeta{TimestampNs: 4, Len: 200, Captured: 40, Offset: 60}, bytes.Repeat([]byte("y"), 40), emit)
	// A continuation lost: the next head writes what came, counted.
	a.add(pcapMeta{TimestampNs: 5, Len: 9, Captured: 3}, []byte("mno"), emit)
	a.add(pcapMeta{TimestampNs: 6, Len: 1, Captured: 1}, []byte("p"), emit)
	// A continuation whose head was lost is dropped.
	a.add(pcapMeta{TimestampNs: 7, Len: 9, Captured: 3, Offset: 3}, []byte("qrs"), emit)
	// Unfinished at the end.
	a.add(pcapMeta{TimestampNs: 8, Len: 9, Captured: 3, CPU: 2}, []byte("tuv"), emit)
	a.flush(emit)
	want := []string{"abc", "zz", "defghijkl", string(bytes.Repeat([]byte("x"), 60)) + string(bytes.Repeat([]byte("y"), 40)), "mno", "p", "tuv"}
	if len(out) != len(want) {
		t.Fatalf("packets %q, want %q", out, want)
	}
	for i := range want {
		if string(out[i]) != want[i] {
			t.Errorf("packet %d: %q, want %q", i, out[i], want[i])
		}
	}
	if a.incomplete != 2 {
		t.Errorf("incomplete %d, want 2", a.incomplete)
	}
}

// tcpFrame is an Ethernet frame of a TCP segment from src to dst.
func tcpFrame(t *testing.T, src, dst netip.AddrPort) []byte {
	t.Helper()
	b := make([]byte, 14)
	var ip []byte
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0], ip[9] = 0x45, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip = make([]byte, 40)
		ip[0], ip[6] = 0x60, 6
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	return append(append(b, ip...), tcp...)
}

func TestPacketEndsAndComments(t *testing.T) {
	curl := netip.MustParseAddrPort("127.0.0.1:40000")
	server := netip.MustParseAddrPort("127.0.0.1:443")
	v6a, v6b := netip.MustParseAddrPort("[2001:db8::1]:5555"), netip.MustParseAddrPort("[2001:db8::2]:443")
	var p procMap
	p.add(curl, server, "pid=1 comm=curl")
	p.add(v6a, v6b, "pid=3 comm=v6")
	for _, tc := range []struct {
		src, dst netip.AddrPort
		want     string
	}{
		{curl, server, "pid=1 comm=curl"}, // curl sends
		{server, curl, "pid=1 comm=curl"}, // curl receives, the server is unknown
		{v6b, v6a, "pid=3 comm=v6"},
		{netip.MustParseAddrPort("10.0.0.1:1"), server, ""},
	} {
		data := tcpFrame(t, tc.src, tc.dst)
		src, dst, ok := packetEnds(data, 14)
		if !ok || src != tc.src || dst != tc.dst {
			t.Errorf("packetEnds: %v %v %v, want %v %v", src, dst, ok, tc.src, tc.dst)
		}
		if got := p.comment(src, dst); got != tc.want {
			t.Errorf("%v -> %v: comment %q, want %q", tc.src, tc.dst, got, tc.want)
		}
	}
	// Once the server is known, it sends its own packets.
	p.add(server, curl, "pid=2 comm=server")
	if got := p.comment(server, curl); got != "pid=2 comm=server" {
		t.Errorf("server's packet: %q", got)
	}
	// Raw IP (no link header), and what is no TCP/UDP over IP.
	raw := tcpFrame(t, curl, server)[14:]
	if s, d, ok := packetEnds(raw, 0); !ok || s != curl || d != server {
		t.Errorf("raw IP: %v %v %v", s, d, ok)
	}
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	for name, data := range map[string][]byte{"arp": arp, "empty": nil, "short": tcpFrame(t, curl, server)[:30]} {
		if _, _, ok := packetEnds(data, 14); ok {
			t.Errorf("%s: ends found", name)
		}
	}
}

func FuzzPacketEnds(f *testing.F) {
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, eth bool) {
		l2 := 0
		if eth {
			l2 = 14
		}
		packetEnds(data, l2)
		var a assembler
		a.snapLen = 1 << 10
		if m, d, err := decodePacket(data); err == nil {
			a.add(m, d, func(pcapMeta, []byte) {})
		}
	})
}

func TestLookupIface(t *testing.T) {
	lo, err := lookupIface("lo")
	if err != nil {
		t.Fatal(err)
	}
	if !lo.loopback || lo.link != layers.LinkTypeEthernet || lo.l2Len != 14 || lo.index == 0 {
		t.Errorf("lo: %+v", lo)
	}
	if _, err := lookupIface("nope0"); err == nil {
		t.Error("nope0 found")
	}
	// Link types, through a fake sysfs.
	dir := t.TempDir()
	old := sysClassNet
	sysClassNet = dir
	defer func() { sysClassNet = old }()
	for typ, want := range map[string]layers.LinkType{"65534": layers.LinkTypeRaw, "1": layers.LinkTypeEthernet, "768": 0} {
		if err := os.MkdirAll(filepath.Join(dir, "lo"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lo", "type"), []byte(typ+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := lookupIface("lo")
		if (want == 0) != (err != nil) || got.link != want {
			t.Errorf("type %s: %+v, %v", typ, got, err)
		}
	}
}

func TestParseHost(t *testing.T) {
	var f pcapFilter
	if err := f.parseHost("127.0.0.1"); err != nil || f.family != 2 || !bytes.Equal(f.host[:4], []byte{127, 0, 0, 1}) {
		t.Errorf("v4: %+v %v", f, err)
	}
	f = pcapFilter{}
	if err := f.parseHost("::ffff:10.1.2.3"); err != nil || f.family != 2 || !bytes.Equal(f.host[:4], []byte{10, 1, 2, 3}) {
		t.Errorf("mapped v4: %+v %v", f, err)
	}
	f = pcapFilter{}
	if err := f.parseHost("2001:db8::1"); err != nil || f.family != 10 || f.host[0] != 0x20 || f.host[15] != 1 {
		t.Errorf("v6: %+v %v", f, err)
	}
	if err := f.parseHost("example.com"); err == nil {
		t.Error("a name accepted")
	}
}

// TestOpenPcapAppends: a second open of the same file (a restarted
// plugin) appends a section instead of truncating the first; a file that
// is not pcapng, or a symbolic link, is refused and left as it was.
func TestOpenPcapAppends(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pcapng")
	ifc := ifaceInfo{name: "lo", link: layers.LinkTypeEthernet, l2Len: 14}
	for range 2 {
		p, err := openPcap(path, ifc, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.close(); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}); n != 2 {
		t.Errorf("%d section headers in the file, want 2", n)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(text, link); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{text, link, dir} {
		if p, err := openPcap(bad, ifc, hclog.NewNullLogger()); err == nil {
			p.close()
			t.Errorf("openPcap(%s) accepted", bad)
		}
	}
	if b, _ := os.ReadFile(text); string(b) != "old" {
		t.Errorf("a refused file now holds %q", b)
	}
}

func TestProcComment(t *testing.T) {
	ctr := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name string
		cg   *cgroup.Identity
		want string
	}{
		{"no cgroup", nil, "pid=7 comm=curl"},
		{"root cgroup", &cgroup.Identity{ID: 1, Path: "/"}, "pid=7 comm=curl"},
		{"service", &cgroup.Identity{ID: 9, Path: "/system.slice/nginx.service"}, "pid=7 comm=curl cgroup=/system.slice/nginx.service"},
		{"container in a pod", &cgroup.Identity{ID: 9, Path: "/x", ContainerID: ctr, PodUID: "u-1"}, "pid=7 comm=curl container_id=" + ctr + " pod_uid=u-1"},
		{"gone", &cgroup.Identity{ID: 42}, "pid=7 comm=curl cgroup_id=42"},
	} {
		if got := procComment(7, "curl", tt.cg); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
