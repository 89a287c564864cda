package opensslmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/pcapng"
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
func tcpFrame(t testing.TB, src, dst netip.AddrPort) []byte {
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
	var p procMap // not loopback: a packet whose sender is unknown is not held for it
	p.add(curl, server, "pid=1 comm=curl", true)
	p.add(v6a, v6b, "pid=3 comm=v6", true)
	for _, tc := range []struct {
		src, dst netip.AddrPort
		want     string
		ready    bool
	}{
		{curl, server, "pid=1 comm=curl", true},                          // curl sends
		{server, curl, "sender unknown; receiver pid=1 comm=curl", true}, // curl receives, the server is unknown
		{v6b, v6a, "sender unknown; receiver pid=3 comm=v6", true},
		{netip.MustParseAddrPort("10.0.0.1:1"), server, "", false},
	} {
		data := tcpFrame(t, tc.src, tc.dst)
		src, dst, ok := packetEnds(data, 14)
		if !ok || src != tc.src || dst != tc.dst {
			t.Errorf("packetEnds: %v %v %v, want %v %v", src, dst, ok, tc.src, tc.dst)
		}
		if a := p.annotate(src, dst); a.Comment != tc.want || a.Ready != tc.ready || a.Flow != flowOf(src, dst) {
			t.Errorf("%v -> %v: %+v, want %q %v", tc.src, tc.dst, a, tc.want, tc.ready)
		}
	}
	if flowOf(curl, server) != flowOf(server, curl) || flowOf(curl, server) == flowOf(curl, v6b) {
		t.Error("a connection's flow is not the same both ways, or two connections share one")
	}
	// Once the server is known, it sends its own packets.
	p.add(server, curl, "pid=2 comm=server", false)
	if a := p.annotate(server, curl); a.Comment != "pid=2 comm=server" || !a.Ready {
		t.Errorf("server's packet: %+v", a)
	}
	// A connection whose keys are not written yet is not ready, from
	// either end; it stays keyed once it was.
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	p.add(a, b, "pid=5 comm=a", false)
	if an := p.annotate(b, a); an.Comment != "sender unknown; receiver pid=5 comm=a" || an.Ready {
		t.Errorf("unkeyed connection: %+v", an)
	}
	p.add(a, b, "pid=5 comm=a", true)
	p.add(a, b, "pid=5 comm=a", false)
	if !p.annotate(a, b).Ready {
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
	if a := p.annotate(client(1), server); !a.Ready { // seen: moves to the newer generation
		t.Fatal("a connection of the older generation is gone")
	}
	for i := maxProcConns + 1; i < 2*maxProcConns; i++ { // the second fills too
		p.add(client(i), server, "x", true)
	}
	if a := p.annotate(client(1), server); !a.Ready || a.Comment != "pid=2 comm=busy" {
		t.Errorf("busy connection: %+v", a)
	}
	if a := p.annotate(client(0), server); a.Comment != "" {
		t.Error("a connection unseen for two generations is still there")
	}
	if n := len(p.conns) + len(p.old); n > 2*maxProcConns {
		t.Errorf("%d connections kept", n)
	}
}

// TestSenderRecordAfterReceiver is the cause of a response commented
// with the client's process (TestOpenSSLPcapFullLoad64K, CI of c4924d4):
// on loopback the client's key record was handled first and the server's,
// read by another goroutine than the packets, came after the server's
// first response packets, which the client's record had made ready and
// which were commented with the receiver. A packet now waits for its
// sender's record; a sender without one is named unknown after
// senderWait; a connection's packets stay in their order (tshark reads
// the handshake in its order).
func TestSenderRecordAfterReceiver(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	var buf bytes.Buffer
	p := &pcapFile{l2Len: 14}
	p.procs.waitSender, p.procs.now = true, clock
	w, err := pcapng.NewWriter(&buf, pcapng.Options{Interface: "lo", Now: clock, Annotate: p.annotate})
	if err != nil {
		t.Fatal(err)
	}
	p.w = w
	wrk, nginx := netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:443")
	wrk2, plain := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:8443")
	seq := byte(0)
	send := func(src, dst netip.AddrPort) {
		t.Helper()
		now = now.Add(time.Millisecond)
		seq++
		data := tcpFrame(t, src, dst)
		data = append(data, seq) // the order sent, last byte
		if err := w.WritePacket(now, data, len(data), ""); err != nil {
			t.Fatal(err)
		}
	}
	connected := func(local, remote netip.AddrPort, comment string) {
		t.Helper()
		if err := p.connected(local, remote, comment, true); err != nil {
			t.Fatal(err)
		}
	}
	send(wrk, nginx) // the handshake, before any record
	send(nginx, wrk)
	send(wrk, nginx)
	connected(wrk, nginx, "pid=1 comm=wrk") // the client's record first
	send(wrk, nginx)                        // the request: waits behind the server's packet
	send(nginx, wrk)                        // the response, before the server's record
	send(nginx, wrk)
	if got := w.Stats().Packets; got != 1 {
		t.Fatalf("%d packets written before the server's record, want wrk's first", got)
	}
	connected(nginx, wrk, "pid=2 comm=nginx")
	send(nginx, wrk) // ready now
	// A server that is not probed: its packets wait senderWait at most.
	connected(wrk2, plain, "pid=1 comm=wrk")
	send(plain, wrk2)
	now = now.Add(senderWait)
	send(plain, wrk2) // ready, after the one waiting
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	last := map[uint64]byte{}
	n := 0
	for {
		data, _, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			break
		}
		n++
		src, dst, _ := packetEnds(data, 14)
		var want string
		switch src {
		case wrk, wrk2:
			want = "pid=1 comm=wrk"
		case nginx:
			want = "pid=2 comm=nginx"
		case plain:
			want = "sender unknown; receiver pid=1 comm=wrk"
		}
		if len(opts.Comments) != 1 || opts.Comments[0] != want {
			t.Errorf("packet %d from %v: comments %q, want %q", data[len(data)-1], src, opts.Comments, want)
		}
		conn := flowOf(src, dst)
		if s := data[len(data)-1]; s < last[conn] {
			t.Errorf("packet %d from %v written after %d", s, src, last[conn])
		} else {
			last[conn] = s
		}
	}
	if n != int(seq) {
		t.Errorf("%d packets read back, %d sent", n, seq)
	}
}

// BenchmarkPcapDecode is user space's cost of one packet of pcap mode at
// full load, past the ring buffer: decoding the record, the connection's
// process and the packet block, for 16 connections in turn (wrk -c16), a
// 1 KiB response's packet in its 4 KiB size class.
func BenchmarkPcapDecode(b *testing.B) {
	var k keyMode
	p := &pcapFile{l2Len: 14}
	p.procs.waitSender = true
	w, err := pcapng.NewWriter(io.Discard, pcapng.Options{Interface: "lo", Annotate: p.annotate})
	if err != nil {
		b.Fatal(err)
	}
	p.w, k.pcap = w, p
	server := netip.MustParseAddrPort("127.0.0.1:443")
	var recs [][]byte
	for i := range 16 {
		client := netip.AddrPortFrom(server.Addr(), uint16(40000+i))
		p.procs.add(client, server, "pid=1 comm=wrk", true)
		p.procs.add(server, client, "pid=2 comm=nginx", true)
		data := append(tcpFrame(b, server, client), make([]byte, 1300)...)
		recs = append(recs, record(pcapMeta{TimestampNs: 1, Len: uint32(len(data)), Captured: uint32(len(data)), Dir: 1}, data, 4096))
	}
	var ev sdk.Event
	b.SetBytes(int64(len(recs[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev.Reset()
		if err := k.decode(pcapEventsMap, recs[i%16], &ev); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
