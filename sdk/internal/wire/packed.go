package wire

import (
	"encoding/binary"
	"net/netip"
)

// Packed batches (module API version 2). A batch's events travel as one
// byte string, EventBatch.packed, instead of one protobuf message each:
// sdk appends an event with one copy of its payload and the host
// reads it in place, where a message per event cost the two processes
// about a third of their CPU at 50 000 events/s (make bench).
//
// Each record is, little-endian:
//
//	off  size
//	  0   4   record length, this header included
//	  4   1   flags: 1 connection, 2 fragment, 4 last fragment, 8 cgroup
//	  5   1   route
//	  6   1   direction
//	  7   1   local address length (0, 4 or 16)
//	  8   8   time, ns since the Unix epoch
//	 16   4   pid
//	 20   4   tid
//	 24   4   uid
//	 28   2   kind length
//	 30   2   comm length
//	 32   2   local port
//	 34   2   remote port
//	 36   2   number of fields
//	 38   1   remote address length (0, 4 or 16)
//	 39   1   zero
//	 40   8   connection id
//	 48   4   payload length
//	 52   4   zero
//	 56  24   with flag 2 only: record id (8), piece index (4), zero (4),
//	          the record's total length (8)
//	 +8   8   with flag 8 only (module API version 3): the cgroup v2 id
//
// then kind, comm, local address, remote address, each field as key length
// (2), value length (4), key, value, and last the payload.
const (
	HeaderBytes   = 56
	FragmentBytes = 24
	CgroupBytes   = 8

	FlagConn         = 1
	FlagFragment     = 2
	FlagFragmentLast = 4
	FlagCgroup       = 8
)

// Fragment is the piece of a record an event carries, when the plugin's
// batcher split the record.
type Fragment struct {
	RecordID uint64
	Index    uint32
	Last     bool
	Total    uint64
}

// LE is the byte order of packed records and frames.
var LE = binary.LittleEndian

// AppendAddr appends a's 4 or 16 bytes; nothing for the zero Addr.
func AppendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// AddrFromBytes is the address AppendAddr wrote, with port; the zero
// AddrPort for any other length.
func AddrFromBytes(b []byte, port uint32) netip.AddrPort {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}
