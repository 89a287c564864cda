package sdk

import (
	"slices"
	"sync"
	"time"

	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// transport is how the host asked the plugin to batch its events
// (pluginhost.Transport on the host's side), its zero fields replaced by
// the defaults of sdk/internal/wire.
type transport struct {
	MaxBatchEvents   uint32
	MaxBatchBytes    uint32
	FlushInterval    time.Duration
	MaxFragmentBytes uint32
	DataChannel      bool // batches travel on the data channel (API version 2)
}

const (
	// queuedBatches bounds the memory a plugin holds for a slow host: when
	// this many full batches wait, Emit blocks and the kernel buffer fills
	// (where losses are counted) instead of the plugin growing.
	queuedBatches = 4
	// counterInterval is how often an idle stream still sends its loss
	// counters when they changed.
	counterInterval = time.Second
)

func (t transport) withDefaults() transport {
	if t.MaxBatchEvents == 0 {
		t.MaxBatchEvents = wire.DefaultMaxBatchEvents
	}
	if t.MaxBatchBytes == 0 || t.MaxBatchBytes > wire.MaxTransportBytes {
		t.MaxBatchBytes = wire.DefaultMaxBatchBytes
	}
	if t.FlushInterval <= 0 {
		t.FlushInterval = wire.DefaultFlushInterval
	}
	if t.MaxFragmentBytes == 0 || t.MaxFragmentBytes > t.MaxBatchBytes {
		t.MaxFragmentBytes = min(wire.DefaultMaxFragmentBytes, t.MaxBatchBytes)
	}
	return t
}

// batcher is the Sink a module emits into. It packs events into reused
// protobuf batches and hands full ones to the Events stream: as packed
// records (module API version 2, see internal/wire/packed.go) or, for a host that chose
// version 1, as an event message each. Steady state allocates nothing per
// event: batches, their event messages and buffers cycle through a free
// list.
type batcher struct {
	t      transport
	module string
	packed bool
	cgroup bool // packed records may carry the cgroup id (API version 3)

	mu        sync.Mutex
	cur       *pb.EventBatch
	n         int // events in cur
	curBytes  int
	first     time.Time // when cur got its first event
	seq       uint64
	recordID  uint64
	counters  map[string]uint64
	names     []string // of counters, sorted: the order batches carry them in
	dirty     bool     // counters changed since the last batch
	lastBatch time.Time
	closed    bool

	free chan *pb.EventBatch
	out  chan *pb.EventBatch
	stop chan struct{}
	done chan struct{}
}

// newBatcher returns a batcher for a stream of the given module API
// version.
func newBatcher(module string, t transport, apiVersion uint32) *batcher {
	b := &batcher{
		t:        t.withDefaults(),
		module:   module,
		packed:   apiVersion >= 2,
		cgroup:   apiVersion >= 3,
		counters: map[string]uint64{},
		free:     make(chan *pb.EventBatch, queuedBatches+2),
		out:      make(chan *pb.EventBatch, queuedBatches),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.cur = b.newBatch()
	go b.tick()
	return b
}

func (b *batcher) newBatch() *pb.EventBatch {
	select {
	case nb := <-b.free:
		return nb
	default:
		return &pb.EventBatch{Events: make([]*pb.Event, 0, b.t.MaxBatchEvents)}
	}
}

// recycle returns a batch the stream has sent.
func (b *batcher) recycle(batch *pb.EventBatch) {
	batch.Events = batch.Events[:0]
	batch.Losses = batch.Losses[:0]
	batch.Packed = batch.Packed[:0]
	select {
	case b.free <- batch:
	default:
	}
}

// slot returns the next reusable event message of cur.
func (b *batcher) slot() *pb.Event {
	evs := b.cur.Events
	n := len(evs)
	if n < cap(evs) {
		evs = evs[:n+1]
		if evs[n] == nil {
			evs[n] = &pb.Event{}
		}
	} else {
		evs = append(evs, &pb.Event{})
	}
	b.cur.Events = evs
	return evs[n]
}

// Emit implements Sink.
func (b *batcher) Emit(ev *Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	payload := ev.Payload
	max := int(b.t.MaxFragmentBytes)
	if len(payload) <= max {
		b.reserveLocked(len(payload))
		b.addLocked(ev, payload, nil)
		b.fullLocked()
		return
	}
	b.recordID++
	for i := 0; len(payload) > 0; i++ {
		n := min(len(payload), max)
		b.reserveLocked(n)
		b.addLocked(ev, payload[:n], &wire.Fragment{RecordID: b.recordID, Index: uint32(i), Last: n == len(payload), Total: uint64(len(ev.Payload))})
		payload = payload[n:]
		b.fullLocked()
	}
}

// addLocked adds ev, with payload and the piece f (nil: the whole
// record), to cur.
func (b *batcher) addLocked(ev *Event, payload []byte, f *wire.Fragment) {
	b.n++
	if b.packed {
		b.cur.Packed = appendPacked(b.cur.Packed, ev, payload, f, b.cgroup)
		b.curBytes = len(b.cur.Packed)
		return
	}
	p := b.slot()
	eventToProto(p, ev, payload)
	b.curBytes += len(payload) + len(ev.Comm) + len(ev.Kind) + 64
	if f != nil {
		p.Fragment = &pb.Fragment{RecordId: f.RecordID, Index: f.Index, Last: f.Last, TotalBytes: f.Total}
		b.curBytes += 32
	}
}

// reserveLocked flushes cur first when n more bytes would overflow it.
func (b *batcher) reserveLocked(n int) {
	if b.n > 0 && b.curBytes+n > int(b.t.MaxBatchBytes) {
		b.flushLocked()
	}
	if b.n == 0 {
		b.first = time.Now()
	}
}

func (b *batcher) fullLocked() {
	if b.n >= int(b.t.MaxBatchEvents) || b.curBytes >= int(b.t.MaxBatchBytes) {
		b.flushLocked()
	}
}

// SetCounter implements Sink.
func (b *batcher) SetCounter(name string, total uint64) {
	b.mu.Lock()
	old, ok := b.counters[name]
	if !ok {
		i, _ := slices.BinarySearch(b.names, name)
		b.names = slices.Insert(b.names, i, name)
	}
	if !ok || old != total {
		b.counters[name] = total
		b.dirty = true
	}
	b.mu.Unlock()
}

// flushLocked hands cur to the stream, blocking while the queue is full.
func (b *batcher) flushLocked() {
	b.seq++
	b.cur.Sequence = b.seq
	// Reuse the batch's counter messages: every batch carries them all.
	losses := b.cur.Losses[:cap(b.cur.Losses)]
	for i, k := range b.names {
		if i == len(losses) {
			losses = append(losses, nil)
			losses = losses[:cap(losses)] // nil beyond: filled below when needed
		}
		if losses[i] == nil {
			losses[i] = &pb.Counter{}
		}
		losses[i].Name, losses[i].Value = k, b.counters[k]
	}
	b.cur.Losses = losses[:len(b.names)]
	b.dirty = false
	b.lastBatch = time.Now()
	b.out <- b.cur
	b.cur = b.newBatch()
	b.n, b.curBytes = 0, 0
}

// tick flushes a batch that waited FlushInterval, and sends changed loss
// counters on an idle stream.
func (b *batcher) tick() {
	defer close(b.done)
	t := time.NewTicker(min(b.t.FlushInterval, counterInterval) / 2)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			switch {
			case b.closed:
			case b.n > 0 && now.Sub(b.first) >= b.t.FlushInterval:
				b.flushLocked()
			case b.n == 0 && b.dirty && now.Sub(b.lastBatch) >= counterInterval:
				b.flushLocked()
			}
			b.mu.Unlock()
		}
	}
}

// close flushes what is pending (always one last batch, so the host gets
// the final counters) and ends the stream.
func (b *batcher) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	close(b.stop)
	b.mu.Unlock()
	<-b.done
	b.mu.Lock()
	b.flushLocked()
	b.closed = true
	close(b.out)
	b.mu.Unlock()
}
