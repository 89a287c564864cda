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

// record builds a pcap_events record: meta, then data, then the rest of
// its size class.
func record(m pcapMeta, data []byte, class int) []byte {
	b, _ := binary.Append(nil, binary.NativeEndian, m)
	b = append(b, data...)
	return append(b, make([]byte, class-len(data))...)
}

func TestDecodePacket(t *testing.T) {
	data := []byte("0123456789")
	m := pcapMeta{TimestampNs: 5, Len: 12, Captured: 10, Ifindex: 1, Dir: 1}
	got, gotData, err := decodePacket(record(m, data, 256))
	if err != nil || got != m || !bytes.Equal(gotData, data) {
		t.Fatalf("%+v %q %v", got, gotData, err)
	}
	for name, bad := range map[string][]byte{
		"short":                make([]byte, pcapMetaSize-1),
		"captured beyond data": record(pcapMeta{Len: 300, Captured: 300}, data, 256),
		"captured beyond len":  record(pcapMeta{Len: 5, Captured: 10}, data, 10),
		"huge captured":        record(pcapMeta{Len: 0xffffffff, Captured: 0xffffffff}, data, 10),
	} {
		if _, _, err := decodePacket(bad); !errors.Is(err, ebpfbase.ErrShortRecord) && !errors.Is(err, errBadPacket) {
			t.Errorf("%s: %v", name, err)
		}
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
	p.add(curl, server, "pid=1 comm=curl", true)
	p.add(v6a, v6b, "pid=3 comm=v6", true)
	for _, tc := range []struct {
		src, dst netip.AddrPort
		want     string
		known    bool
	}{
		{curl, server, "pid=1 comm=curl", true}, // curl sends
		{server, curl, "pid=1 comm=curl", true}, // curl receives, the server is unknown
		{v6b, v6a, "pid=3 comm=v6", true},
		{netip.MustParseAddrPort("10.0.0.1:1"), server, "", false},
	} {
		data := tcpFrame(t, tc.src, tc.dst)
		src, dst, ok := packetEnds(data, 14)
		if !ok || src != tc.src || dst != tc.dst {
			t.Errorf("packetEnds: %v %v %v, want %v %v", src, dst, ok, tc.src, tc.dst)
		}
		if got, known := p.comment(src, dst); got != tc.want || known != tc.known {
			t.Errorf("%v -> %v: comment %q %v, want %q %v", tc.src, tc.dst, got, known, tc.want, tc.known)
		}
	}
	// Once the server is known, it sends its own packets.
	p.add(server, curl, "pid=2 comm=server", false)
	if got, keyed := p.comment(server, curl); got != "pid=2 comm=server" || !keyed {
		t.Errorf("server's packet: %q %v", got, keyed)
	}
	// A connection whose keys are not written yet is not keyed, from
	// either end; it stays keyed once it was.
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	p.add(a, b, "pid=5 comm=a", false)
	if c, keyed := p.comment(b, a); c != "pid=5 comm=a" || keyed {
		t.Errorf("unkeyed connection: %q %v", c, keyed)
	}
	p.add(a, b, "pid=5 comm=a", true)
	p.add(a, b, "pid=5 comm=a", false)
	if _, keyed := p.comment(a, b); !keyed {
		t.Error("a keyed connection lost its keys")
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
		if m, d, err := decodePacket(data); err == nil && len(d) != int(m.Captured) {
			t.Fatalf("%d bytes, captured %d", len(d), m.Captured)
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

// TestProcMapGenerations: a full map drops the connections not seen for a
// generation, and keeps those still sending.
func TestProcMapGenerations(t *testing.T) {
	var p procMap
	server := netip.MustParseAddrPort("127.0.0.1:443")
	client := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1)
	}
	p.add(client(0), server, "pid=1 comm=old", true)
	p.add(client(1), server, "pid=2 comm=busy", true)
	for i := 2; i < maxProcConns+1; i++ { // the first generation fills, the second begins
		p.add(client(i), server, "x", true)
	}
	if _, ok := p.comment(client(1), server); !ok { // seen: moves to the newer generation
		t.Fatal("a connection of the older generation is gone")
	}
	for i := maxProcConns + 1; i < 2*maxProcConns; i++ { // the second fills too
		p.add(client(i), server, "x", true)
	}
	if c, ok := p.comment(client(1), server); !ok || c != "pid=2 comm=busy" {
		t.Errorf("busy connection: %q %v", c, ok)
	}
	if _, ok := p.comment(client(0), server); ok {
		t.Error("a connection unseen for two generations is still there")
	}
	if n := len(p.conns) + len(p.old); n > 2*maxProcConns {
		t.Errorf("%d connections kept", n)
	}
}
