package opensslmod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/pcapng"
	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// Names of kern/openssl_kern.c's pcap mode.
const (
	pcapEventsMap = "pcap_events"
	progEgress    = "tc_egress"
	progIngress   = "tc_ingress"
	// pcapMetaSize is sizeof(struct pcap_meta).
	pcapMetaSize = 32
	// pcapSnapLen is the most bytes of a packet kept (pcap_snaplen): more
	// than a loopback GSO packet (64 KiB and its headers).
	pcapSnapLen = 256 << 10
)

// Loss counters of pcap mode.
const (
	// CounterPcapLost counts packets (or their ends) the kernel could not
	// queue: the perf buffer of their CPU was full. perf_lost counts the
	// same samples, as the buffer reports them to the reader.
	CounterPcapLost = "pcap_packets_lost"
	// CounterPcapTruncated counts packets longer than 256 KiB, cut.
	CounterPcapTruncated = "pcap_packets_truncated"
	// CounterPcapEarly counts packets written before waiting their second
	// for keys, because 32 MiB of packets were waiting: a key arriving
	// after them is written after them.
	CounterPcapEarly = "pcap_packets_early"
	// CounterPcapIncomplete counts packets written without their end:
	// samples of a packet longer than 64 KiB were lost.
	CounterPcapIncomplete = "pcap_packets_incomplete"
	// CounterPcapUnwritten counts packets that could not be written to the
	// file (file system full...).
	CounterPcapUnwritten = "pcap_packets_unwritten"
)

// pcapMeta is the Go twin of struct pcap_meta.
type pcapMeta struct {
	TimestampNs uint64
	Len         uint32
	Captured    uint32
	Offset      uint32
	Ifindex     uint32
	Dir         uint32
	CPU         uint32
}

// decodePacket splits raw, one sample of pcap_events, into its meta and the
// packet's bytes it carries. It never panics.
func decodePacket(raw []byte) (pcapMeta, []byte, error) {
	var m pcapMeta
	if len(raw) < pcapMetaSize {
		return m, nil, fmt.Errorf("decoding a packet: %d bytes, want at least %d: %w", len(raw), pcapMetaSize, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	m.TimestampNs = bo.Uint64(raw[0:])
	m.Len = bo.Uint32(raw[8:])
	m.Captured = bo.Uint32(raw[12:])
	m.Offset = bo.Uint32(raw[16:])
	m.Ifindex = bo.Uint32(raw[20:])
	m.Dir = bo.Uint32(raw[24:])
	m.CPU = bo.Uint32(raw[28:])
	// perf pads a sample to 8 bytes: the bytes are Captured long.
	if uint64(m.Captured) > uint64(len(raw)-pcapMetaSize) || uint64(m.Offset)+uint64(m.Captured) > uint64(m.Len) {
		return m, nil, fmt.Errorf("decoding a packet: %d bytes at %d of %d, sample of %d: %w", m.Captured, m.Offset, m.Len, len(raw), errBadPacket)
	}
	return m, raw[pcapMetaSize : pcapMetaSize+int(m.Captured)], nil
}

// errBadPacket is wrapped for a packet sample whose lengths do not add up.
var errBadPacket = errors.New("bad packet sample")

// partial is a packet whose head sample came and whose continuation
// samples are awaited.
type partial struct {
	meta   pcapMeta // of the head
	want   int      // bytes the kernel sends: min(len, snap length)
	data   []byte   // reused from packet to packet
	active bool     // a packet is being joined
}

// assembler joins the samples of packets longer than one sample, by CPU
// (a packet's samples are consecutive on its CPU's buffer). Not safe for
// concurrent use: Decode's goroutine owns it.
type assembler struct {
	snapLen int
	pending map[uint32]*partial
	// incomplete counts packets written without some of their bytes,
	// continuation samples having been lost.
	incomplete uint64
}

// add takes one sample; it calls emit for each packet complete (or given
// up on: a head sample following an unfinished packet of the CPU) with
// the packet's head meta and bytes. data is only used during the call.
func (a *assembler) add(m pcapMeta, data []byte, emit func(m pcapMeta, data []byte)) {
	p := a.pending[m.CPU]
	if m.Offset != 0 {
		if p == nil || !p.active || p.meta.TimestampNs != m.TimestampNs || int(m.Offset) != len(p.data) {
			return // its head was lost or was given up on
		}
		p.data = append(p.data, data...)
		if len(p.data) >= p.want {
			p.active = false
			emit(p.meta, p.data)
		}
		return
	}
	if p != nil && p.active {
		p.active = false
		a.incomplete++
		emit(p.meta, p.data)
	}
	want := min(int(m.Len), a.snapLen)
	if len(data) >= want {
		emit(m, data)
		return
	}
	if p == nil {
		if a.pending == nil {
			a.pending = map[uint32]*partial{}
		}
		p = &partial{}
		a.pending[m.CPU] = p
	}
	// The CPU's buffer serves packet after packet: emit uses data only
	// during the call.
	p.meta, p.want, p.active = m, want, true
	p.data = append(p.data[:0], data...)
}

// flush emits the unfinished packets.
func (a *assembler) flush(emit func(m pcapMeta, data []byte)) {
	for _, p := range a.pending {
		if p.active {
			p.active = false
			a.incomplete++
			emit(p.meta, p.data)
		}
	}
}

// Link types of the interfaces pcap mode captures, from
// /sys/class/net/IF/type (ARPHRD_*).
const (
	arphrdEther    = 1
	arphrdLoopback = 772
	arphrdNone     = 65534 // tun, wireguard: raw IP
)

// sysClassNet is /sys/class/net; a variable for tests.
var sysClassNet = "/sys/class/net"

// ifaceInfo is what pcap mode needs of an interface.
type ifaceInfo struct {
	name     string
	index    int
	loopback bool
	link     layers.LinkType
	l2Len    uint32 // bytes before the network header
}

// lookupIface checks that ifname exists and has a link type pcap mode
// writes: Ethernet (and loopback, which has Ethernet headers) or raw IP.
func lookupIface(ifname string) (ifaceInfo, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("interface %q: %w", ifname, err)
	}
	info := ifaceInfo{name: ifname, index: ifc.Index, loopback: ifc.Flags&net.FlagLoopback != 0}
	data, err := os.ReadFile(sysClassNet + "/" + ifname + "/type")
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("reading the link type of %s: %w", ifname, err)
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("reading the link type of %s: %q", ifname, data)
	}
	switch t {
	case arphrdEther, arphrdLoopback:
		info.link, info.l2Len = layers.LinkTypeEthernet, 14
	case arphrdNone:
		info.link, info.l2Len = layers.LinkTypeRaw, 0
	default:
		return ifaceInfo{}, fmt.Errorf("interface %s has link type %d (ARPHRD_*): only Ethernet, loopback and raw IP interfaces are captured", ifname, t)
	}
	return info, nil
}

// pcapFilter is the kernel's packet filter (pcap_port, pcap_host).
type pcapFilter struct {
	port   uint16
	family uint16 // 0: no host filter, 2 AF_INET, 10 AF_INET6
	host   [16]byte
}

// parseHost turns the host attribute (an IP address) into the filter.
func (f *pcapFilter) parseHost(s string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	a = a.Unmap()
	if a.Is4() {
		f.family = 2
		b := a.As4()
		copy(f.host[:], b[:])
	} else {
		f.family = 10
		f.host = a.As16()
	}
	return nil
}

// constants returns the const volatile globals of pcap mode.
func (f pcapFilter) constants(ifc ifaceInfo) map[string]any {
	return map[string]any{
		"pcap_port":        f.port,
		"pcap_host_family": f.family,
		"pcap_host":        f.host,
		"pcap_l2_len":      ifc.l2Len,
		"pcap_snaplen":     uint32(pcapSnapLen),
	}
}

// connKey is a TCP/UDP connection seen from one end.
type connKey struct {
	local, remote netip.AddrPort
}

// maxProcConns bounds the connections procMap remembers.
const maxProcConns = 1 << 16

// procMap maps connections to the process at their local end, learnt
// from the key records, to comment packets. Safe for concurrent use.
type procMap struct {
	mu    sync.Mutex
	conns map[connKey]string
}

// add records that the process described by comment ("pid=N comm=C") has
// the connection local -> remote.
func (p *procMap) add(local, remote netip.AddrPort, comment string) {
	if !local.IsValid() || !remote.IsValid() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil || len(p.conns) >= maxProcConns {
		p.conns = make(map[connKey]string, 256)
	}
	p.conns[connKey{local, remote}] = comment
}

// comment returns the comment of a packet from src to dst: the process
// sending it (whose connection is src -> dst), else the one receiving it.
func (p *procMap) comment(src, dst netip.AddrPort) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[connKey{src, dst}]; ok {
		return c
	}
	return p.conns[connKey{dst, src}]
}

// packetEnds returns the source and destination of a TCP or UDP packet
// over IPv4 or IPv6, after l2Len bytes of link header. ok is false for
// anything else. It never panics.
func packetEnds(data []byte, l2Len int) (src, dst netip.AddrPort, ok bool) {
	if len(data) < l2Len {
		return src, dst, false
	}
	ip := data[l2Len:]
	if l2Len == 14 {
		switch binary.BigEndian.Uint16(data[12:14]) {
		case 0x0800, 0x86dd:
		default:
			return src, dst, false
		}
	}
	if len(ip) < 1 {
		return src, dst, false
	}
	var sa, da netip.Addr
	var l4 []byte
	var proto byte
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&0xf) * 4
		if ihl < 20 || len(ip) < ihl {
			return src, dst, false
		}
		if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
			return src, dst, false // a fragment after the first: no ports
		}
		proto, sa, da, l4 = ip[9], netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[ihl:]
	case 6:
		if len(ip) < 40 {
			return src, dst, false
		}
		proto, sa, da, l4 = ip[6], netip.AddrFrom16([16]byte(ip[8:24])).Unmap(), netip.AddrFrom16([16]byte(ip[24:40])).Unmap(), ip[40:]
	default:
		return src, dst, false
	}
	if (proto != 6 && proto != 17) || len(l4) < 4 {
		return src, dst, false
	}
	return netip.AddrPortFrom(sa, binary.BigEndian.Uint16(l4[0:2])), netip.AddrPortFrom(da, binary.BigEndian.Uint16(l4[2:4])), true
}

// procComment is the packet comment naming a process and, when it runs
// in one, its container (and pod) or else its cgroup; nothing more for
// the root cgroup or an unknown one.
func procComment(pid uint32, comm string, cg *cgroup.Identity) string {
	s := "pid=" + strconv.FormatUint(uint64(pid), 10) + " comm=" + comm
	switch {
	case cg == nil:
	case cg.ContainerID != "":
		s += " container_id=" + cg.ContainerID
		if cg.PodUID != "" {
			s += " pod_uid=" + cg.PodUID
		}
	case cg.Path != "" && cg.Path != "/":
		s += " cgroup=" + cg.Path
	case cg.Path == "":
		s += " cgroup_id=" + strconv.FormatUint(cg.ID, 10)
	}
	return s
}

// pcapFile is the pcapng file of pcap mode and its writer.
type pcapFile struct {
	f     *os.File
	w     *pcapng.Writer
	procs procMap
	l2Len int

	stop chan struct{}
	done chan struct{}
}

// openPcap opens path through safefile.Append (created 0600; an existing
// file is appended to, never truncated, and only when safe) and writes a
// new section's header for ifc after whatever whole blocks an earlier run
// left, its last block cut by a kill removed first.
func openPcap(path string, ifc ifaceInfo, logger hclog.Logger) (*pcapFile, error) {
	f, err := safefile.Append(path)
	if err != nil {
		return nil, fmt.Errorf("opening the pcapng file: %w", err)
	}
	kept, cut, err := pcapng.Resume(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening the pcapng file: %w", err)
	}
	if kept > 0 || cut > 0 {
		logger.Info("appending a new section to the pcapng file", "path", path, "bytes_kept", kept, "unfinished_block_bytes_removed", cut)
	}
	p := &pcapFile{f: f, l2Len: int(ifc.l2Len)}
	p.w, err = pcapng.NewWriter(f, pcapng.Options{
		Interface: ifc.name,
		LinkType:  ifc.link,
		SnapLen:   pcapSnapLen,
		Annotate:  p.annotate,
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return p, nil
}

// annotate is the comment of a packet when it is written: the process of
// its connection, if a key record named it meanwhile.
func (p *pcapFile) annotate(data []byte) string {
	src, dst, ok := packetEnds(data, p.l2Len)
	if !ok {
		return ""
	}
	return p.procs.comment(src, dst)
}

// WriteSecrets writes a Decryption Secrets Block.
func (p *pcapFile) WriteSecrets(lines []byte) error { return p.w.WriteSecrets(lines) }

// tick writes, every interval until close, the packets that waited their
// second, and reports through report the packets forced out early.
func (p *pcapFile) tick(interval time.Duration, onErr func(error), report func(early uint64)) {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if err := p.w.Tick(); err != nil {
					onErr(err)
				}
				report(p.w.Stats().EarlyPackets)
			}
		}
	}()
}

// close writes what is held and closes the file.
func (p *pcapFile) close() error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	err := p.w.Close()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
