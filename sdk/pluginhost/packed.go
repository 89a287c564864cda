package pluginhost

import (
	"errors"
	"fmt"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/intern"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
)

// The layout of packed records is in sdk/internal/wire.

// errPacked is wrapped by every error of readPacked.
var errPacked = errors.New("malformed packed batch")

// packedReader reads the records of packed batches into events. Strings
// that repeat from event to event (kinds, command names, field keys and
// short values) are interned, so steady state allocates nothing per event.
type packedReader struct {
	strs intern.Interner
}

// read decodes the record at the start of b into ev (its Payload aliases
// b; its Fields buffer is reused) and, for a piece of a split record, f.
// It returns the bytes after the record, and whether it was a piece.
func (r *packedReader) read(b []byte, module string, ev *sdk.Event, f *wire.Fragment) (rest []byte, piece bool, err error) {
	if len(b) < wire.HeaderBytes {
		return nil, false, fmt.Errorf("%w: %d bytes left, a record header takes %d", errPacked, len(b), wire.HeaderBytes)
	}
	size := wire.LE.Uint32(b)
	if size < wire.HeaderBytes || uint64(size) > uint64(len(b)) {
		return nil, false, fmt.Errorf("%w: record of %d bytes, %d left", errPacked, size, len(b))
	}
	rec, rest := b[wire.HeaderBytes:size], b[size:]
	flags := b[4]
	if flags&wire.FlagFragment != 0 {
		if len(rec) < wire.FragmentBytes {
			return nil, false, fmt.Errorf("%w: fragment header cut short", errPacked)
		}
		*f = wire.Fragment{
			RecordID: wire.LE.Uint64(rec),
			Index:    wire.LE.Uint32(rec[8:]),
			Last:     flags&wire.FlagFragmentLast != 0,
			Total:    wire.LE.Uint64(rec[16:]),
		}
		rec = rec[wire.FragmentBytes:]
	}
	var cgroup uint64
	if flags&wire.FlagCgroup != 0 {
		if len(rec) < wire.CgroupBytes {
			return nil, false, fmt.Errorf("%w: cgroup id cut short", errPacked)
		}
		cgroup = wire.LE.Uint64(rec)
		rec = rec[wire.CgroupBytes:]
	}
	kindLen, commLen := int(wire.LE.Uint16(b[28:])), int(wire.LE.Uint16(b[30:]))
	laLen, raLen := int(b[7]), int(b[38])
	nfields := int(wire.LE.Uint16(b[36:]))
	payloadLen := uint64(wire.LE.Uint32(b[48:]))
	cut := func(n int) []byte {
		if err != nil || n > len(rec) {
			if err == nil {
				err = fmt.Errorf("%w: record of %d bytes holds less than its lengths say", errPacked, size)
			}
			return nil
		}
		v := rec[:n:n]
		rec = rec[n:]
		return v
	}
	kind, comm, la, ra := cut(kindLen), cut(commLen), cut(laLen), cut(raLen)
	fields := ev.Fields[:0]
	for i := 0; i < nfields && err == nil; i++ {
		lens := cut(6)
		if err != nil {
			break
		}
		k := cut(int(wire.LE.Uint16(lens)))
		v := cut(int(wire.LE.Uint32(lens[2:])))
		fields = append(fields, sdk.Field{Key: r.strs.String(k), Value: r.strs.String(v)})
	}
	if err != nil {
		ev.Fields = fields[:0]
		return nil, false, err
	}
	if uint64(len(rec)) != payloadLen {
		ev.Fields = fields[:0]
		return nil, false, fmt.Errorf("%w: payload of %d bytes where the header says %d", errPacked, len(rec), payloadLen)
	}
	*ev = sdk.Event{
		Time:     time.Unix(0, int64(wire.LE.Uint64(b[8:]))),
		Module:   module,
		Kind:     r.strs.String(kind),
		PID:      wire.LE.Uint32(b[16:]),
		TID:      wire.LE.Uint32(b[20:]),
		UID:      wire.LE.Uint32(b[24:]),
		Comm:     r.strs.String(comm),
		CgroupID: cgroup,
		Payload:  rec,
		Fields:   fields,
		Route:    sdk.Route(b[5]),
	}
	if ev.Route != sdk.RouteOutput && ev.Route != sdk.RouteStream {
		ev.Route = sdk.RouteOutput
	}
	if flags&wire.FlagConn != 0 {
		ev.Conn = sdk.Connection{
			ID:        wire.LE.Uint64(b[40:]),
			Local:     wire.AddrFromBytes(la, uint32(wire.LE.Uint16(b[32:]))),
			Remote:    wire.AddrFromBytes(ra, uint32(wire.LE.Uint16(b[34:]))),
			Direction: sdk.Direction(b[6]),
		}
		if ev.Conn.Direction > sdk.DirectionIngress {
			ev.Conn.Direction = sdk.DirectionUnknown
		}
	}
	return rest, flags&wire.FlagFragment != 0, nil
}
