package opensslmod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Event kind and fields.
const (
	KindTLSData = "tls_data"
	// FieldLib is the library, "openssl".
	FieldLib = "lib"
	// FieldFn is the library function: SSL_write, SSL_read, SSL_write_ex
	// or SSL_read_ex.
	FieldFn = "fn"
	// FieldTruncated is "true" on the last event of a call longer than the
	// kernel sends (16 MiB), and on a chunk it could not read: bytes of the
	// call are missing after it.
	FieldTruncated = "truncated"
	// FieldGap is "true" on an event when records of its connection and
	// direction were lost just before it (ring buffer full, unreadable or
	// truncated data): its payload does not follow on from the previous
	// event's of that direction.
	FieldGap = "gap"
	// LibOpenSSL is the value of FieldLib.
	LibOpenSSL = "openssl"
)

// Values of kern/include/tls.h.
const (
	kindData = 1 // TLS_KIND_DATA

	flagTruncated = 1 << 0 // TLS_F_TRUNCATED
	flagFault     = 1 << 1 // TLS_F_FAULT

	chunkMax = 16 * 1024 // TLS_CHUNK_MAX

	dirEgress  = 1 // TLS_DIR_EGRESS
	dirIngress = 2 // TLS_DIR_INGRESS

	afInet  = 2
	afInet6 = 10

	statsMap      = "tls_stats"
	statTruncated = 0 // TLS_STAT_TRUNCATED
	statFault     = 1 // TLS_STAT_FAULT
	statTooDeep   = 2 // TLS_STAT_DEPTH
)

// fnNames are the names of enum openssl_fn (kern/openssl_kern.c).
var fnNames = [...]string{1: "SSL_write", 2: "SSL_read", 3: "SSL_write_ex", 4: "SSL_read_ex"}

// record is the Go twin of struct tls_data_event (kern/include/tls.h);
// TestLayout proves it. The decoder reads the fields at these offsets
// rather than copying the whole record.
type record struct {
	Hdr      ebpfbase.Header
	Session  uint64
	Serial   uint64
	CallSeq  uint64
	Total    uint64
	Offset   uint64
	Fd       int32
	Family   uint16
	Lport    uint16
	Rport    uint16
	Fn       uint8
	Dir      uint8
	Reserved uint32
	Laddr    [16]byte
	Raddr    [16]byte
	Data     [chunkMax]byte
}

// Offsets of the fields of record (unsafe.Offsetof, checked by TestLayout).
const (
	offSession = ebpfbase.HeaderSize
	offSerial  = offSession + 8
	offCallSeq = offSerial + 8
	offTotal   = offCallSeq + 8
	offOffset  = offTotal + 8
	offFd      = offOffset + 8
	offFamily  = offFd + 4
	offLport   = offFamily + 2
	offRport   = offLport + 2
	offFn      = offRport + 2
	offDir     = offFn + 1
	offLaddr   = offDir + 1 + 4
	offRaddr   = offLaddr + 16
	offData    = offRaddr + 16
)

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, function or direction, length out of range).
var ErrBadRecord = errors.New("bad openssl record")

// ConnID is the sdk.Connection ID of the session at address session in
// process pid, told apart from earlier sessions at that address by serial.
// It is never 0.
func ConnID(pid uint32, session, serial uint64) uint64 {
	h := mix64(session ^ mix64(serial^mix64(uint64(pid))))
	if h == 0 {
		h = 1
	}
	return h
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Decode decodes a struct tls_data_event into a tls_data event. It never
// panics: a short or inconsistent record is an error wrapping
// ebpfbase.ErrShortRecord or ErrBadRecord. It allocates nothing once ev's
// payload and fields have grown (and a session is known to the gap
// tracker).
func (m *Module) Decode(_ *ebpf.Map, raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return err
	}
	if len(raw) < offData {
		return fmt.Errorf("decoding openssl record: %d bytes, want at least %d: %w", len(raw), offData, ebpfbase.ErrShortRecord)
	}
	if h.Kind != kindData {
		return fmt.Errorf("decoding openssl record: unknown kind %d: %w", h.Kind, ErrBadRecord)
	}
	if h.Len > chunkMax {
		return fmt.Errorf("decoding openssl record: chunk length %d, at most %d: %w", h.Len, chunkMax, ErrBadRecord)
	}
	end := offData + int(h.Len)
	if len(raw) < end {
		return fmt.Errorf("decoding openssl record: %d bytes, chunk needs %d: %w", len(raw), end, ebpfbase.ErrShortRecord)
	}
	fn := raw[offFn]
	if int(fn) >= len(fnNames) || fnNames[fn] == "" {
		return fmt.Errorf("decoding openssl record: unknown function %d: %w", fn, ErrBadRecord)
	}
	var dir sdk.Direction
	switch raw[offDir] {
	case dirEgress:
		dir = sdk.DirectionEgress
	case dirIngress:
		dir = sdk.DirectionIngress
	default:
		return fmt.Errorf("decoding openssl record: unknown direction %d: %w", raw[offDir], ErrBadRecord)
	}
	bo := binary.NativeEndian
	session, serial := bo.Uint64(raw[offSession:]), bo.Uint64(raw[offSerial:])
	seq, total, off := bo.Uint64(raw[offCallSeq:]), bo.Uint64(raw[offTotal:]), bo.Uint64(raw[offOffset:])
	if off > total || uint64(h.Len) > total-off {
		return fmt.Errorf("decoding openssl record: chunk of %d bytes at %d of a %d-byte call: %w", h.Len, off, total, ErrBadRecord)
	}

	m.FillEvent(&h, ev)
	ev.Kind = KindTLSData
	ev.Route = sdk.RouteStream
	ev.Payload = append(ev.Payload[:0], raw[offData:end]...)
	ev.Conn = sdk.Connection{ID: ConnID(h.PID, session, serial), Direction: dir}
	lport, rport := bo.Uint16(raw[offLport:]), bo.Uint16(raw[offRport:])
	switch bo.Uint16(raw[offFamily:]) {
	case afInet:
		ev.Conn.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[offLaddr:offLaddr+4])), lport)
		ev.Conn.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[offRaddr:offRaddr+4])), rport)
	case afInet6:
		// A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
		ev.Conn.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[offLaddr:offLaddr+16])).Unmap(), lport)
		ev.Conn.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[offRaddr:offRaddr+16])).Unmap(), rport)
	}
	ev.AddField(FieldLib, LibOpenSSL)
	ev.AddField(FieldFn, fnNames[fn])
	if h.Flags&(flagTruncated|flagFault) != 0 {
		ev.AddField(FieldTruncated, "true")
	}
	if m.gaps.see(streamKey{ev.Conn.ID, dir}, seq, off, uint64(h.Len), total) {
		ev.AddField(FieldGap, "true")
	}
	return nil
}

// maxTracked bounds the sessions the gap tracker remembers.
const maxTracked = 1 << 16

// gapTracker follows, per connection and direction, where the last record
// ended, to spot records lost in between: the kernel numbers the calls of
// a session that moved data in a direction 1, 2, ... and gives each chunk
// its offset in the call. Not safe for concurrent use.
type gapTracker struct {
	pos map[streamKey]callPos
	// forgot is set once the tracker was cleared to stay bounded: a
	// session first seen at call 2 or later may then be an old one.
	forgot bool
}

// streamKey is one direction of a connection.
type streamKey struct {
	id  uint64
	dir sdk.Direction
}

type callPos struct {
	seq, next, total uint64
}

// see records a chunk of n bytes at off of call seq (of total bytes) of
// stream k, and reports whether data was lost before it. A seq of 0 (the
// kernel had no room for the session) is not tracked.
func (g *gapTracker) see(k streamKey, seq, off, n, total uint64) bool {
	if seq == 0 {
		return false
	}
	p, ok := g.pos[k]
	var gap bool
	switch {
	case !ok:
		gap = off != 0 || (seq != 1 && !g.forgot)
	case seq == p.seq:
		gap = off != p.next
	default:
		gap = p.next < p.total || seq != p.seq+1 || off != 0
	}
	if !ok {
		if g.pos == nil {
			g.pos = make(map[streamKey]callPos, 64)
		} else if len(g.pos) >= maxTracked {
			clear(g.pos)
			g.forgot = true
		}
	}
	g.pos[k] = callPos{seq: seq, next: off + n, total: total}
	return gap
}
