package sdk

import (
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecaphost/ecaphost/sdk/internal/sched"
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
	// BoostPID is the host's process when it runs in the background: the
	// batcher returns it to normal priority when told the module's input
	// overflows (Overloaded). 0: never.
	BoostPID int
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

	// Overloaded's state: the host process to boost (0: none), when it
	// last looked (unix ns), how often it boosted, and the functions it
	// calls (replaced in tests).
	boostPID   int
	boostCheck atomic.Int64
	boosts     atomic.Uint64
	hostIdle   func(pid int) (bool, error)
	hostNormal func(pid int) (int, error)

	// HostBehind's state: the bytes the host had not read yet of what
	// was written to the data channel, and how many can wait (0:
	// unknown), as the stream last measured them (noteBacklog).
	hostBacklog, hostLimit atomic.Int64
	behind                 atomic.Bool
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

		hostIdle:   sched.Idle,
		hostNormal: sched.Normal,
	}
	// Only the process that launched the plugin may be boosted: the
	// host's pid is a request about itself.
	if t.BoostPID > 0 && t.BoostPID == os.Getppid() {
		b.boostPID = t.BoostPID
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
	b.setCounterLocked(name, total)
	b.mu.Unlock()
}

func (b *batcher) setCounterLocked(name string, total uint64) {
	old, ok := b.counters[name]
	if !ok {
		i, _ := slices.BinarySearch(b.names, name)
		b.names = slices.Insert(b.names, i, name)
	}
	if !ok || old != total {
		b.counters[name] = total
		b.dirty = true
	}
}

// counterHostBoosts counts the times a plugin returned a host in the
// background to normal priority (Overloaded).
const counterHostBoosts = InfoCounterPrefix + "host_boosts"

// boostEvery bounds how often Overloaded looks at the host's priority.
const boostEvery = 5 * time.Millisecond

// noteBacklog records what the data channel's writer measured after a
// write: n bytes not read by the host yet, of limit that can wait.
func (b *batcher) noteBacklog(n, limit int) {
	b.hostBacklog.Store(int64(n))
	b.hostLimit.Store(int64(limit))
}

// HostBehind tells whether the host is not keeping up: from when three
// quarters of the data channel wait unread, or half the queue of batches
// before it, until less than a quarter of the channel waits and the queue
// is empty. The host reads events at its own pace (in the background, in
// CPU time the captured programs leave idle): the module's probes send
// less meanwhile (ebpfbase.Spec.BehindMap). For one caller at a time.
func (b *batcher) HostBehind() bool {
	queued := len(b.out)
	n, limit := b.hostBacklog.Load(), b.hostLimit.Load()
	behind := b.behind.Load()
	switch {
	case queued >= queuedBatches/2 || (limit > 0 && n >= limit/4*3):
		behind = true
	case queued == 0 && (limit <= 0 || n < limit/4):
		behind = false
	}
	b.behind.Store(behind)
	return behind
}

// BoostsHost tells whether Overloaded has a host to boost.
func (b *batcher) BoostsHost() bool { return b.boostPID != 0 }

// Overloaded is told by the module's event loop (ebpfbase) that its
// kernel buffer is filling beyond where records are cut: the host is not
// reading fast enough. A host in the background (Transport.boost_pid)
// may not run soon enough to notice by itself; it is returned to normal
// priority at once, and its governor puts it back when it has caught up.
// Safe for concurrent use; it never waits for the host.
func (b *batcher) Overloaded() {
	if b.boostPID == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := b.boostCheck.Load()
	if now-last < int64(boostEvery) || !b.boostCheck.CompareAndSwap(last, now) {
		return
	}
	if idle, err := b.hostIdle(b.boostPID); err != nil || !idle {
		return
	}
	// An error leaves the host to notice by itself, as without boost_pid.
	if n, _ := b.hostNormal(b.boostPID); n > 0 {
		b.boosts.Add(1)
	}
}

// flushLocked hands cur to the stream, blocking while the queue is full.
func (b *batcher) flushLocked() {
	b.seq++
	b.cur.Sequence = b.seq
	if n := b.boosts.Load(); n > 0 {
		b.setCounterLocked(counterHostBoosts, n)
	}
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
