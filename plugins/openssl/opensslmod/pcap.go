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
	pcapMetaSize = 24
	// pcapSnapLen is the most bytes of a packet kept (pcap_snaplen): more
	// than a loopback GSO packet (64 KiB and its headers).
	pcapSnapLen = 256 << 10
)

// Loss counters of pcap mode.
const (
	// CounterPcapLost counts packets the kernel could not queue: the
	// pcap_events ring buffer was full.
	CounterPcapLost = "pcap_packets_lost"
	// CounterPcapTruncated counts packets longer than 256 KiB, cut.
	CounterPcapTruncated = "pcap_packets_truncated"
	// CounterPcapEarly counts packets written before their connection's
	// keys, because 32 MiB of packets were waiting for keys: a key
	// arriving after them is written after them.
	CounterPcapEarly = "pcap_packets_early"
	// CounterPcapUnwritten counts packets that could not be written to the
	// file (file system full...).
	CounterPcapUnwritten = "pcap_packets_unwritten"
)

// pcapMeta is the Go twin of struct pcap_meta.
type pcapMeta struct {
	TimestampNs uint64
	Len         uint32
	Captured    uint32
	Ifindex     uint32
	Dir         uint32
}

// decodePacket splits raw, one record of pcap_events, into its meta and
// the packet's bytes. The record is as long as its size class: the bytes
// are Captured long. It never panics.
func decodePacket(raw []byte) (pcapMeta, []byte, error) {
	var m pcapMeta
	if len(raw) < pcapMetaSize {
		return m, nil, fmt.Errorf("decoding a packet: %d bytes, want at least %d: %w", len(raw), pcapMetaSize, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	m.TimestampNs = bo.Uint64(raw[0:])
	m.Len = bo.Uint32(raw[8:])
	m.Captured = bo.Uint32(raw[12:])
	m.Ifindex = bo.Uint32(raw[16:])
	m.Dir = bo.Uint32(raw[20:])
	if uint64(m.Captured) > uint64(len(raw)-pcapMetaSize) || m.Captured > m.Len {
		return m, nil, fmt.Errorf("decoding a packet: %d bytes of %d, record of %d: %w", m.Captured, m.Len, len(raw), errBadPacket)
	}
	return m, raw[pcapMetaSize : pcapMetaSize+int(m.Captured)], nil
}

// errBadPacket is wrapped for a packet record whose lengths do not add up.
var errBadPacket = errors.New("bad packet record")

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

// maxProcConns bounds the connections procMap remembers: about twice
// this many at most, in two generations.
const maxProcConns = 1 << 16

// senderWait is how long, on a loopback interface, the packets whose
// sender is unknown wait for its key record once the receiver's came:
// both ends are local there, and the sender's record is usually on its
// way (the two ends' records are read from the ring buffer by another
// goroutine than the packets). After it, the sender is taken as not
// probed and its packets go out at once.
const senderWait = pcapng.DefaultDelay

// procMap maps connections to the process at their local end, learnt
// from the key records, to comment packets, and tells whether their keys
// are written. When the newer generation is full the older one is
// dropped, so the connections still sending packets stay. Safe for
// concurrent use.
type procMap struct {
	// waitSender holds a packet whose sender is unknown up to senderWait
	// after its receiver's record: set on loopback.
	waitSender bool
	now        func() time.Time // time.Now; tests replace it

	mu         sync.Mutex
	conns, old map[connKey]procEntry
	// cache holds the last ready annotations by direction, so that most
	// packets cost neither map lookup: a ready annotation only changes
	// with a record of the connection (add clears its slots) or when a
	// generation is dropped (cleared whole).
	cache [procCacheSize]procCached
}

// procCacheSize is how many directions procMap's cache holds: a power of
// two, more than the connections a busy capture interleaves.
const procCacheSize = 256

type procCached struct {
	src, dst netip.AddrPort
	ann      pcapng.Annotation
	ok       bool
}

// cacheSlot is the slot of the direction src -> dst, from both ends'
// endHash.
func cacheSlot(hs, hd uint64) int {
	return int((hs*3 ^ hd) >> 56 % procCacheSize)
}

// procEntry is what procMap knows of one end of a connection.
type procEntry struct {
	comment  string    // "pid=N comm=C ...": of a packet this end sends
	received string    // of a packet this end receives from an unknown sender
	since    time.Time // when this end was first learnt
	keyed    bool      // the session's keys are written
}

// add records that the process described by comment ("pid=N comm=C") has
// the connection local -> remote; keyed says that its session's keys are
// written (a connection stays keyed once it was).
func (p *procMap) add(local, remote netip.AddrPort, comment string, keyed bool) {
	if !local.IsValid() || !remote.IsValid() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := connKey{local, remote}
	hl, hr := endHash(local), endHash(remote)
	p.cache[cacheSlot(hl, hr)], p.cache[cacheSlot(hr, hl)] = procCached{}, procCached{}
	e, ok := p.getLocked(k)
	if !ok {
		e.since = p.clock()
	}
	if e.comment != comment {
		e.comment, e.received = comment, "sender unknown; receiver "+comment
	}
	e.keyed = e.keyed || keyed
	p.putLocked(k, e)
}

func (p *procMap) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

func (p *procMap) putLocked(k connKey, e procEntry) {
	if p.conns == nil || len(p.conns) >= maxProcConns {
		p.old, p.conns = p.conns, make(map[connKey]procEntry, 256)
		p.cache = [procCacheSize]procCached{}
	}
	p.conns[k] = e
}

// getLocked looks k up, bringing it to the newer generation.
func (p *procMap) getLocked(k connKey) (procEntry, bool) {
	if e, ok := p.conns[k]; ok {
		return e, true
	}
	e, ok := p.old[k]
	if ok {
		delete(p.old, k)
		p.putLocked(k, e)
	}
	return e, ok
}

// annotate returns what the pcapng writer needs of a packet from src to
// dst. Its comment names the process sending it (whose connection is src
// -> dst); when only the receiver is known, "sender unknown; receiver
// pid=...". It is ready once either end's record had the session's keys
// written and, with waitSender, the sender is known or senderWait passed
// since the receiver's record. Its flow is the connection.
func (p *procMap) annotate(src, dst netip.AddrPort) pcapng.Annotation {
	hs, hd := endHash(src), endHash(dst)
	flow := (hs + hd) | 1 // flowOf
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &p.cache[cacheSlot(hs, hd)]
	if c.ok && c.src == src && c.dst == dst {
		return c.ann
	}
	var a pcapng.Annotation
	s, sok := p.getLocked(connKey{src, dst})
	d, dok := p.getLocked(connKey{dst, src})
	switch {
	case sok:
		a = pcapng.Annotation{Comment: s.comment, Flow: flow, Ready: s.keyed || d.keyed}
	case dok:
		ready := d.keyed && (!p.waitSender || p.clock().Sub(d.since) >= senderWait)
		a = pcapng.Annotation{Comment: d.received, Flow: flow, Ready: ready}
	default:
		return pcapng.Annotation{Flow: flow}
	}
	if a.Ready {
		*c = procCached{src: src, dst: dst, ann: a, ok: true}
	}
	return a
}

// flowOf is a hash of the connection between a and b, the same both
// ways, never 0: the pcapng file keeps the order of a connection's packets
// (tshark decrypts in one pass only what follows the handshake in the
// file).
func flowOf(a, b netip.AddrPort) uint64 {
	return (endHash(a) + endHash(b)) | 1
}

// endHash is a hash of one end of a connection.
func endHash(e netip.AddrPort) uint64 {
	a := e.Addr().As16()
	bo := binary.LittleEndian
	h := uint64(e.Port())
	for _, v := range [2]uint64{bo.Uint64(a[:8]), bo.Uint64(a[8:])} {
		h = (h ^ v) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h
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
	p.procs.waitSender = ifc.loopback
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

// annotate tells the pcapng writer of a packet: a TCP or UDP one as
// procMap.annotate says; other packets carry no TLS, have no comment and
// are always ready.
func (p *pcapFile) annotate(data []byte) pcapng.Annotation {
	src, dst, ok := packetEnds(data, p.l2Len)
	if !ok {
		return pcapng.Annotation{Ready: true}
	}
	return p.procs.annotate(src, dst)
}

// connected records the process at the local end of a connection whose
// keys were just handled and writes the connection's packets that were
// waiting for them (or for this end, their sender) and are ready now.
func (p *pcapFile) connected(local, remote netip.AddrPort, comment string, keyed bool) error {
	p.procs.add(local, remote, comment, keyed)
	return p.w.Release(func(data []byte) bool {
		src, dst, ok := packetEnds(data, p.l2Len)
		return ok && (src == local && dst == remote || src == remote && dst == local) && p.procs.annotate(src, dst).Ready
	})
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
