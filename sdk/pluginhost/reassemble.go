package pluginhost

import (
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
)

// MaxRecordBytes bounds the size of one record the host joins from
// fragments. A record announced larger is dropped and counted, so a hostile
// or broken plugin cannot make the host allocate without bound.
const MaxRecordBytes = 64 << 20

// Counters the host side of the transport adds to a batch's losses.
const (
	CounterFragmentsBroken = "host.fragments_broken" // records cut short: a piece never came
	CounterRecordsOversize = "host.records_oversize" // records over MaxRecordBytes, dropped
	// CounterBatchesMalformed counts batches whose packed records did not
	// decode: the rest of such a batch is dropped (Batch.Err says why).
	CounterBatchesMalformed = "host.batches_malformed"
)

// reassembler joins the fragments of records split by a plugin's batcher.
// Fragments of one record arrive back to back on one stream, so at most one
// record is pending at a time.
type reassembler struct {
	pending   bool
	id        uint64
	next      uint32
	total     uint64
	head      sdk.Event // metadata of the pending record
	buf       []byte
	broken    uint64
	oversized uint64
	skipID    uint64 // record being dropped as oversize
}

// add takes one decoded event: a whole record (f nil), or the piece f
// says. ev is the caller's scratch event, its Payload valid only during
// the call. A complete record (or a whole unfragmented event) goes to out.
// A record cut short by a missing piece is handed out as it is with the
// field truncated=true and counted, never passed off as whole.
func (r *reassembler) add(ev *sdk.Event, f *wire.Fragment, out func(*sdk.Event)) {
	if f == nil {
		r.abandon(out)
		out(ev)
		return
	}
	if r.skipID != 0 && f.RecordID == r.skipID {
		return
	}
	if f.Index == 0 {
		r.abandon(out)
		if f.Total > MaxRecordBytes {
			r.oversized++
			r.skipID = f.RecordID
			return
		}
		r.pending, r.id, r.next, r.total = true, f.RecordID, 0, f.Total
		fields := r.head.Fields[:0]
		r.head = *ev
		r.head.Fields = append(fields, ev.Fields...)
		r.head.Payload = nil
		r.buf = r.buf[:0]
	}
	if !r.pending || f.RecordID != r.id || f.Index != r.next {
		// A piece out of order or of an unknown record: what we hold is
		// incomplete and this piece cannot be placed.
		r.abandon(out)
		r.broken++
		return
	}
	if uint64(len(r.buf)+len(ev.Payload)) > MaxRecordBytes {
		r.pending = false
		r.oversized++
		r.skipID = r.id
		return
	}
	r.buf = append(r.buf, ev.Payload...)
	r.next++
	if !f.Last {
		return
	}
	r.pending = false
	*ev = r.head
	ev.Fields = append([]sdk.Field(nil), r.head.Fields...)
	ev.Payload = r.buf
	if uint64(len(r.buf)) != r.total {
		ev.AddField("truncated", "true")
		ev.AddField("expected_bytes", strconv.FormatUint(r.total, 10))
		r.broken++
	}
	out(ev)
	r.buf = nil // handed out; the next record starts a new buffer
}

// abandon emits a pending record that will not be completed.
func (r *reassembler) abandon(out func(*sdk.Event)) {
	if !r.pending {
		return
	}
	r.pending = false
	r.broken++
	ev := r.head
	ev.Fields = append([]sdk.Field(nil), r.head.Fields...)
	ev.Payload = r.buf
	ev.AddField("truncated", "true")
	ev.AddField("expected_bytes", strconv.FormatUint(r.total, 10))
	r.buf = nil
	out(&ev)
}
