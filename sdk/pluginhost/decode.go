package pluginhost

import (
	"fmt"
	"slices"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// BatchDecoder turns wire batches of one stream into Batches, joining
// fragmented records. It never panics on hostile input: pieces it cannot
// place are counted in CounterFragmentsBroken. The zero value is ready;
// set Module to stamp events with the module's name.
type BatchDecoder struct {
	Module string
	r      reassembler
	pr     packedReader
	batch  Batch
	ev     sdk.Event
	frag   wire.Fragment
	// malformed counts batches whose packed records stopped making sense;
	// the rest of such a batch is dropped.
	malformed uint64
}

// Decode converts w. The returned Batch is reused by the next call; its
// events' payloads alias w's buffers.
func (d *BatchDecoder) Decode(w *pb.EventBatch) *Batch {
	b := &d.batch
	b.Sequence = w.GetSequence()
	b.Err = nil
	// Reuse the events' field buffers across batches.
	evs := b.Events[:0]
	next := func(ev *sdk.Event) {
		n := len(evs)
		if n < cap(evs) {
			evs = evs[:n+1]
			fields := evs[n].Fields[:0]
			evs[n] = *ev
			if ev == &d.ev {
				// The scratch event owns its fields buffer: copy into ours.
				evs[n].Fields = append(fields, ev.Fields...)
			}
		} else {
			c := *ev
			if ev == &d.ev {
				c.Fields = slices.Clone(ev.Fields)
			}
			evs = append(evs, c)
		}
	}
	for _, p := range w.GetEvents() {
		eventFromProto(&d.ev, p, d.Module)
		var f *wire.Fragment
		if pf := p.GetFragment(); pf != nil {
			d.frag = wire.Fragment{RecordID: pf.GetRecordId(), Index: pf.GetIndex(), Last: pf.GetLast(), Total: pf.GetTotalBytes()}
			f = &d.frag
		}
		d.r.add(&d.ev, f, next)
	}
	for rest := w.GetPacked(); len(rest) > 0; {
		var piece bool
		var err error
		rest, piece, err = d.pr.read(rest, d.Module, &d.ev, &d.frag)
		if err != nil {
			d.malformed++
			b.Err = fmt.Errorf("batch %d: %w", w.GetSequence(), err)
			break
		}
		var f *wire.Fragment
		if piece {
			f = &d.frag
		}
		d.r.add(&d.ev, f, next)
	}
	b.Events = evs
	b.Losses = b.Losses[:0]
	for _, c := range w.GetLosses() {
		b.Losses = append(b.Losses, Counter{Name: c.GetName(), Value: c.GetValue()})
	}
	if d.r.broken > 0 {
		b.Losses = append(b.Losses, Counter{Name: CounterFragmentsBroken, Value: d.r.broken})
	}
	if d.r.oversized > 0 {
		b.Losses = append(b.Losses, Counter{Name: CounterRecordsOversize, Value: d.r.oversized})
	}
	if d.malformed > 0 {
		b.Losses = append(b.Losses, Counter{Name: CounterBatchesMalformed, Value: d.malformed})
	}
	return b
}
