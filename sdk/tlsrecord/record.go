package tlsrecord

import (
	"encoding/binary"
	"errors"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Values of kern/include/tls.h.
const (
	// KindData is ecap_hdr.kind of a struct tls_data_event (TLS_KIND_DATA).
	KindData = 1
	// ChunkMax is the most data one record carries (TLS_CHUNK_MAX).
	ChunkMax = 16 * 1024
	// CallMax is the most data the kernel sends of one call
	// (TLS_CALL_MAX); the rest is cut and counted.
	CallMax = 16 << 20

	// FlagTruncated marks the last record of a call the kernel cut to its
	// snap length (max_data, the overload snap length while the ring
	// buffer is over half full, or CallMax): the record's total is the
	// call's real length.
	FlagTruncated = 1 << 0
	// FlagFault marks a chunk the kernel could not read from the process:
	// the record holds no data.
	FlagFault = 1 << 1
	// FlagLast marks the last record of a call.
	FlagLast = 1 << 2

	// DirEgress and DirIngress are the values of the dir field (enum
	// tls_dir), those of sdk.Direction.
	DirEgress  = 1
	DirIngress = 2
)

// Record is the Go twin of struct tls_data_event: what the kernel sends is
// its first DataOffset bytes and Hdr.Len bytes of Data. Modules compare it
// with their object in a test (CheckLayout); the decoder reads the fields
// at their offsets rather than copying the record.
type Record struct {
	Hdr     ebpfbase.Header
	Session uint64 // the library's session pointer
	Serial  uint64 // tells sessions at one address apart
	CallSeq uint64 // 1, 2...: calls of the session in this direction
	Total   uint64 // bytes the call moved
	Offset  uint64 // of this chunk within the call
	Fd      int32  // -1: unknown
	Family  uint16 // AF_INET, AF_INET6, another family, or 0
	Lport   uint16 // host byte order
	Rport   uint16
	Fn      uint8  // module-defined function number
	Dir     uint8  // DirEgress or DirIngress
	Info    uint32 // module-defined
	Laddr   [16]byte
	Raddr   [16]byte
	Data    [ChunkMax]byte
}

// Offsets of the fields of Record (unsafe.Offsetof; CheckLayout checks
// them too).
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
	offInfo    = offDir + 1
	offLaddr   = offInfo + 4
	offRaddr   = offLaddr + 16
	// DataOffset is the size of the fixed fields: the offset of Data.
	DataOffset = offRaddr + 16
)

const (
	afInet  = 2
	afInet6 = 10
)

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent: unknown kind, function or direction, length out of range.
// A record shorter than it should be is ebpfbase.ErrShortRecord.
var ErrBadRecord = errors.New("bad TLS record")

// Event kind and fields of the events Decode fills.
const (
	// KindTLSData is the Kind of every event.
	KindTLSData = "tls_data"
	// FieldLib is the library, Decoder.Lib.
	FieldLib = "lib"
	// FieldFn is the library function, from Decoder.Fns.
	FieldFn = "fn"
	// FieldTruncated is "true" on the last event of a call the kernel cut
	// (see FlagTruncated), and on a chunk the kernel could not read: bytes
	// of the call are missing after it.
	FieldTruncated = "truncated"
	// FieldPayloadBytes is, on the last event of a call the kernel cut,
	// the length its payload had: the call's bytes from the event's
	// offset to the call's end. Payload holds the first len(Payload) of
	// them; the rest were not copied. The host's stream decoding skips
	// the missing bytes and marks the messages they belonged to.
	FieldPayloadBytes = "payload_bytes"
	// FieldGap is "true" on an event when records of its connection and
	// direction were lost just before it (ring buffer full, unreadable or
	// truncated data): its payload does not follow on from the previous
	// event's of that direction.
	FieldGap = "gap"
)

// BehindMap is tls.h's tls_host_behind, for ebpfbase.Spec.BehindMap: while
// the host is behind, the probes cut calls to a few KiB as while the ring
// buffer is filling.
const BehindMap = "tls_host_behind"

// The per-CPU counters of tls.h (map tls_stats), as loss counters.
const (
	// StatsMap is the per-CPU array of tls.h's counters.
	StatsMap = "tls_stats"
	// CounterTruncated counts calls longer than CallMax; their events end
	// with the field truncated.
	CounterTruncated = "tls_calls_truncated"
	// CounterFault counts chunks the kernel could not read from the
	// process's buffer.
	CounterFault = "tls_chunks_unreadable"
	// CounterTooDeep counts calls not captured because the thread was
	// already inside 4 nested TLS calls.
	CounterTooDeep = "tls_calls_too_deep"
	// CounterCut counts calls the kernel cut to their snap length
	// (max_data, overload, CallMax): each still reached the host, short.
	CounterCut = sdk.TruncatedCounterPrefix + "records"
	// CounterCutBytes counts the bytes of those calls not copied.
	CounterCutBytes = sdk.TruncatedCounterPrefix + "bytes"
	// CounterCutOverload counts the calls cut because the module's ring
	// buffer was over half full (OverloadData).
	CounterCutOverload = sdk.TruncatedCounterPrefix + "overload_records"

	statTruncated   = 0 // TLS_STAT_TRUNCATED
	statFault       = 1 // TLS_STAT_FAULT
	statTooDeep     = 2 // TLS_STAT_DEPTH
	statCut         = 3 // TLS_STAT_CUT
	statCutBytes    = 4 // TLS_STAT_CUT_BYTES
	statCutOverload = 5 // TLS_STAT_CUT_OVERLOAD
)

// Counters returns the counters of tls.h for ebpfbase.Spec.Counters: a new
// slice each call.
func Counters() []ebpfbase.CounterMap {
	return []ebpfbase.CounterMap{
		{Name: CounterTruncated, Map: StatsMap, Index: statTruncated},
		{Name: CounterFault, Map: StatsMap, Index: statFault},
		{Name: CounterTooDeep, Map: StatsMap, Index: statTooDeep},
		{Name: CounterCut, Map: StatsMap, Index: statCut},
		{Name: CounterCutBytes, Map: StatsMap, Index: statCutBytes},
		{Name: CounterCutOverload, Map: StatsMap, Index: statCutOverload},
	}
}

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

// Bytes returns r as the kernel sends it: the DataOffset bytes of the
// fixed fields, in the host's byte order, then Hdr.Len bytes of Data (at
// most ChunkMax). For tests and fuzzing seeds of modules.
func (r *Record) Bytes() []byte {
	n := min(int(r.Hdr.Len), ChunkMax)
	b := make([]byte, DataOffset+n)
	bo := binary.NativeEndian
	bo.PutUint64(b[0:], r.Hdr.TimestampNs)
	bo.PutUint32(b[8:], r.Hdr.PID)
	bo.PutUint32(b[12:], r.Hdr.TID)
	bo.PutUint32(b[16:], r.Hdr.UID)
	bo.PutUint32(b[20:], r.Hdr.Kind)
	bo.PutUint32(b[24:], r.Hdr.Len)
	bo.PutUint32(b[28:], r.Hdr.Flags)
	copy(b[32:48], r.Hdr.Comm[:])
	bo.PutUint64(b[48:], r.Hdr.CgroupID)
	bo.PutUint64(b[offSession:], r.Session)
	bo.PutUint64(b[offSerial:], r.Serial)
	bo.PutUint64(b[offCallSeq:], r.CallSeq)
	bo.PutUint64(b[offTotal:], r.Total)
	bo.PutUint64(b[offOffset:], r.Offset)
	bo.PutUint32(b[offFd:], uint32(r.Fd))
	bo.PutUint16(b[offFamily:], r.Family)
	bo.PutUint16(b[offLport:], r.Lport)
	bo.PutUint16(b[offRport:], r.Rport)
	b[offFn], b[offDir] = r.Fn, r.Dir
	bo.PutUint32(b[offInfo:], r.Info)
	copy(b[offLaddr:], r.Laddr[:])
	copy(b[offRaddr:], r.Raddr[:])
	copy(b[DataOffset:], r.Data[:n])
	return b
}
