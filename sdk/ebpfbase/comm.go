package ebpfbase

import (
	"bytes"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/intern"
)

// Stamper fills the fields of events that the common record header
// carries. It interns command names, so that a name seen before costs no
// allocation, in a bounded table a hostile workload renaming its
// processes cannot grow. The zero value is ready. It is not safe for
// concurrent use: a decoder keeps its own (Decode is called one record at
// a time).
type Stamper struct {
	comms Interner
}

// Comm returns the NUL-terminated command name in b (a C char[16]) as a
// string, allocating only the first time a name is seen.
func (s *Stamper) Comm(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return s.comms.String(b)
}

// FillEvent sets the fields of ev the header carries: Time (see
// KtimeToTime), PID, TID, UID, CgroupID and Comm.
func (s *Stamper) FillEvent(h *Header, ev *sdk.Event) {
	ev.Time = KtimeToTime(h.TimestampNs)
	ev.PID, ev.TID, ev.UID = h.PID, h.TID, h.UID
	ev.CgroupID = h.CgroupID
	ev.Comm = s.Comm(h.Comm[:])
}

// Interner turns byte slices a decoder reads into strings, allocating only
// the first time a value is seen: names, codes and other short values
// repeat from record to record. It is bounded: values longer than 64
// bytes are copied, not kept, and past 4096 values the table starts over,
// so hostile input cannot grow it. The zero value is ready; it is not safe
// for concurrent use.
type Interner struct{ in intern.Interner }

// String returns b as a string.
func (i *Interner) String(b []byte) string { return i.in.String(b) }
