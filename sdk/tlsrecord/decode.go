package tlsrecord

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Decoder decodes the records of one module into events. Set Lib and Fns
// before the first Decode; the zero value of the rest is ready.
// Besides those settings it keeps, per connection and direction, where the
// last record ended, to mark gaps: it is not safe for concurrent use
// (ebpfbase calls a module's Decode one record at a time).
type Decoder struct {
	// Lib is the value of the lib field, e.g. "openssl"; it also names the
	// records in errors.
	Lib string
	// Fns names the module's functions by the record's fn number: Fns[fn].
	// A number without a name is a bad record.
	Fns []string

	stamp ebpfbase.Stamper // fills the header fields of each event
	gaps  gapTracker
	num   struct { // the last payload_bytes value formatted
		n uint64
		s string
	}
}

// itoa formats n, reusing the last string for the same value: cut calls
// under a steady load mostly have the same lengths.
func (d *Decoder) itoa(n uint64) string {
	if d.num.s == "" || d.num.n != n {
		d.num.n, d.num.s = n, strconv.FormatUint(n, 10)
	}
	return d.num.s
}

// Decode decodes raw, one struct tls_data_event, into ev: Kind
// KindTLSData, Route sdk.RouteStream, Payload the chunk's data, Conn its
// connection (ID from ConnID, the socket's addresses when the kernel found
// them, IPv4-mapped IPv6 addresses unmapped) and direction, the header
// fields, and the fields lib, fn, truncated and gap. It returns the
// record's module-defined info value; the module may add fields of its own
// after it. Decode never panics: a short or inconsistent record is an
// error wrapping ebpfbase.ErrShortRecord or ErrBadRecord, and ev is then
// left in an unspecified state. It allocates nothing once ev's payload and
// fields have grown and the connection is known to the gap tracker.
func (d *Decoder) Decode(raw []byte, ev *sdk.Event) (info uint32, err error) {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return 0, fmt.Errorf("decoding %s record: %w", d.Lib, err)
	}
	if len(raw) < DataOffset {
		return 0, fmt.Errorf("decoding %s record: %d bytes, want at least %d: %w", d.Lib, len(raw), DataOffset, ebpfbase.ErrShortRecord)
	}
	if h.Kind != KindData {
		return 0, fmt.Errorf("decoding %s record: unknown kind %d: %w", d.Lib, h.Kind, ErrBadRecord)
	}
	if h.Len > ChunkMax {
		return 0, fmt.Errorf("decoding %s record: chunk length %d, at most %d: %w", d.Lib, h.Len, ChunkMax, ErrBadRecord)
	}
	end := DataOffset + int(h.Len)
	if len(raw) < end {
		return 0, fmt.Errorf("decoding %s record: %d bytes, chunk needs %d: %w", d.Lib, len(raw), end, ebpfbase.ErrShortRecord)
	}
	fn := raw[offFn]
	if int(fn) >= len(d.Fns) || d.Fns[fn] == "" {
		return 0, fmt.Errorf("decoding %s record: unknown function %d: %w", d.Lib, fn, ErrBadRecord)
	}
	var dir sdk.Direction
	switch raw[offDir] {
	case DirEgress:
		dir = sdk.DirectionEgress
	case DirIngress:
		dir = sdk.DirectionIngress
	default:
		return 0, fmt.Errorf("decoding %s record: unknown direction %d: %w", d.Lib, raw[offDir], ErrBadRecord)
	}
	bo := binary.NativeEndian
	session, serial := bo.Uint64(raw[offSession:]), bo.Uint64(raw[offSerial:])
	seq, total, off := bo.Uint64(raw[offCallSeq:]), bo.Uint64(raw[offTotal:]), bo.Uint64(raw[offOffset:])
	if off > total || uint64(h.Len) > total-off {
		return 0, fmt.Errorf("decoding %s record: chunk of %d bytes at %d of a %d-byte call: %w", d.Lib, h.Len, off, total, ErrBadRecord)
	}

	d.stamp.FillEvent(&h, ev)
	ev.Kind = KindTLSData
	ev.Route = sdk.RouteStream
	ev.Payload = append(ev.Payload[:0], raw[DataOffset:end]...)
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
	ev.AddField(FieldLib, d.Lib)
	ev.AddField(FieldFn, d.Fns[fn])
	covered := uint64(h.Len) // bytes of the call this record accounts for
	if h.Flags&(FlagTruncated|FlagFault) != 0 {
		ev.AddField(FieldTruncated, "true")
		if h.Flags&(FlagTruncated|FlagFault) == FlagTruncated {
			// The call's end was cut on purpose: its length is known,
			// so the next call follows on without a gap.
			covered = total - off
			ev.AddField(FieldPayloadBytes, d.itoa(covered))
		}
	}
	if d.gaps.see(streamKey{ev.Conn.ID, dir}, seq, off, covered, total) {
		ev.AddField(FieldGap, "true")
	}
	return bo.Uint32(raw[offInfo:]), nil
}

// maxTracked bounds the connections the gap tracker remembers.
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
