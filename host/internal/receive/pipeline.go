package receive

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/prio"
	"github.com/ecaphost/ecaphost/host/internal/stream"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
)

// Sink receives every module's events, from each module's stream
// goroutine. Write must not keep events after it returns; WriteOwned may
// keep them until it calls release. Their error (an output dropped the
// batch, and counted it) does not stop the stream.
type Sink interface {
	Write(events []sdk.Event) error
	WriteOwned(events []sdk.Event, release func()) error
}

// Pipeline carries one module's events from its plugin to the sink. Deliver
// is called by one goroutine at a time (the module's event stream); Idle,
// End, Record and Stats may be called from any goroutine.
type Pipeline struct {
	module string
	sink   Sink
	gov    *prio.Governor // told when the input backs up; may be nil
	logger hclog.Logger

	// dec joins and decodes RouteStream events (HTTP); decMu guards it
	// and out between the stream and the idle flusher.
	decMu sync.Mutex
	dec   *stream.Decoder
	out   *outBatch      // what goes to the sink next
	free  chan *outBatch // batches the outputs are done with

	malformedLog time.Time // when a malformed batch was last logged

	// What behind saw of the loss counters in the last batch, and when
	// the kernel side last cut records for load. Deliver's goroutine only.
	govLost, govCut uint64
	cutAt           time.Time

	mu     sync.Mutex
	events uint64
	prev   map[string]uint64 // counters of earlier plugin processes
	cur    map[string]uint64 // counters of the current one
	// lastEvent is the time of the last event the current plugin process
	// sent: where a gap starts when it dies.
	lastEvent time.Time
}

// New returns the pipeline of module, writing to sink and reporting to gov
// (nil: the host does not leave normal priority).
func New(module string, sink Sink, gov *prio.Governor, logger hclog.Logger) *Pipeline {
	p := &Pipeline{module: module, sink: sink, gov: gov, logger: logger.Named(module),
		prev: map[string]uint64{}, cur: map[string]uint64{}, dec: stream.New(stream.Options{}),
		free: make(chan *outBatch, freeBatches)}
	p.out = p.newOutBatch()
	return p
}

// outBatch is a batch of events for the sink with the copies of their
// payloads and fields. The sink keeps it until its outputs are done, then
// it comes back through Pipeline.free.
type outBatch struct {
	events  []sdk.Event
	arena   []byte
	farena  []sdk.Field
	release func()
}

// freeBatches bounds the batches kept for reuse; the outputs' queues bound
// how many are in flight.
const freeBatches = 8

// maxArena bounds the payload copies kept for reuse between batches.
const maxArena = 4 << 20

// flushArena is how many payload bytes a batch takes before it goes to the
// sink: a batch of large bodies (64 KiB responses) otherwise grew its arena
// past maxArena, was not reused, and every batch paid for a fresh arena
// and its page faults (make bench, 64 KiB text: keep's copies were 37% of
// the host's CPU).
const flushArena = 1 << 20

func (p *Pipeline) newOutBatch() *outBatch {
	select {
	case b := <-p.free:
		return b
	default:
	}
	b := &outBatch{}
	b.release = func() {
		clear(b.events)
		b.events, b.arena, b.farena = b.events[:0], b.arena[:0], b.farena[:0]
		if cap(b.arena) > maxArena {
			return // one huge message must not pin its memory
		}
		select {
		case p.free <- b:
		default:
		}
	}
	return b
}

// behindBytes is how much input waiting means the module is behind when
// the data channel's capacity is unknown: three batches.
const behindBytes = 3 * pluginhost.DefaultMaxBatchBytes

// behind tells whether b says the module is behind: three quarters of
// what can wait on the data channel before the plugin blocks is waiting.
// A host in the background falls behind by a few batches now and then and
// catches up in idle time; every boost out of it costs the captured
// programs (make bench, 1 KiB, eight interleaved pairs: boosting at three
// batches of the 8 MiB channel came in 4 runs of 8, at three quarters in
// 1, for 2.9% more requests/s, nothing lost either way). The plugin's
// queue and the kernel's buffer still lie between that and a loss.
func behind(b *pluginhost.Batch) bool {
	if b.BacklogLimit <= 0 {
		return b.Backlog >= behindBytes
	}
	return b.Backlog >= b.BacklogLimit/4*3
}

// CounterOverloadRecords counts the records a module's kernel side cut
// because its buffer was filling (TLS modules, kern/include/tls.h).
const CounterOverloadRecords = sdk.TruncatedCounterPrefix + "overload_records"

// cutHold is how long after its kernel side last cut records for load
// (CounterOverloadRecords grew; plugins send their counters every 500 ms)
// a module is taken to shed its load that way.
const cutHold = time.Second

// behind tells whether the module is behind, for the governor: its data
// channel backs up (behind), unless its kernel side is cutting records to
// keep up, which costs the captured programs less than a host at normal
// priority formatting every byte; but always when it lost records since
// the last batch. A plugin whose ring buffer keeps filling all the same
// brings the host to normal priority itself (pluginhost.Transport.BoostPID).
func (p *Pipeline) behind(b *pluginhost.Batch, now time.Time) bool {
	var lost, cut uint64
	for _, c := range b.Losses {
		switch {
		case c.Name == CounterOverloadRecords:
			cut = c.Value
		case !strings.HasPrefix(c.Name, sdk.InfoCounterPrefix) && !strings.HasPrefix(c.Name, sdk.TruncatedCounterPrefix):
			lost += c.Value
		}
	}
	// The counters are a plugin process's own: a new process starts at 0.
	losing := lost > p.govLost
	if cut != p.govCut {
		p.cutAt = now
	}
	p.govLost, p.govCut = lost, cut
	switch {
	case losing:
		return true
	case now.Sub(p.cutAt) < cutHold:
		return false
	}
	return behind(b)
}

// malformedLogEvery bounds how often a plugin sending malformed batches is
// logged.
const malformedLogEvery = 5 * time.Second

// Deliver takes one batch from the plugin: its events are valid only
// during the call. It never fails: a malformed batch is counted in the
// batch's losses and logged at most every malformedLogEvery.
func (p *Pipeline) Deliver(b *pluginhost.Batch) error {
	p.gov.Report(p.module, p.behind(b, time.Now()))
	if b.Err != nil && time.Since(p.malformedLog) > malformedLogEvery {
		p.malformedLog = time.Now()
		p.logger.Error("dropping the rest of a batch the plugin sent malformed", "error", b.Err)
	}
	p.mu.Lock()
	p.events += uint64(len(b.Events))
	if n := len(b.Events); n > 0 {
		p.lastEvent = b.Events[n-1].Time
	}
	for _, c := range b.Losses {
		p.cur[c.Name] = c.Value
	}
	p.mu.Unlock()
	p.decMu.Lock()
	defer p.decMu.Unlock()
	for i := range b.Events {
		ev := &b.Events[i]
		if ev.Route == sdk.RouteStream {
			p.dec.Feed(ev, p.keep)
			continue
		}
		p.keep(ev)
	}
	p.flushOut()
	return nil
}

// keep copies an event (valid only during the call) into out. Payloads and
// fields go to the batch's arenas: a slice taken before an arena grows
// keeps pointing at the old array, which stays valid. A batch holding
// flushArena bytes goes to the sink at once. decMu must be held.
func (p *Pipeline) keep(ev *sdk.Event) {
	b := p.out
	c := *ev
	start := len(b.arena)
	b.arena = append(b.arena, ev.Payload...)
	c.Payload = b.arena[start:len(b.arena):len(b.arena)]
	fstart := len(b.farena)
	b.farena = append(b.farena, ev.Fields...)
	c.Fields = b.farena[fstart:len(b.farena):len(b.farena)]
	b.events = append(b.events, c)
	if len(b.arena) >= flushArena {
		p.flushOut()
	}
}

// flushOut hands out to the sink, which gives it back when its outputs
// are done, and starts the next batch. decMu must be held.
func (p *Pipeline) flushOut() {
	if len(p.out.events) == 0 {
		return
	}
	// A drop is counted by the output and shown in the summary.
	_ = p.sink.WriteOwned(p.out.events, p.out.release)
	p.out = p.newOutBatch()
}

// Idle emits what the stream decoder holds for connections idle for a
// while; the stream's owner calls it every second.
func (p *Pipeline) Idle(now time.Time) { p.flushStreams(now, false) }

// End is told that a plugin process's stream ended, however it ended:
// everything the stream decoder holds is written, the process's loss
// counters join those of the module's earlier processes, and End returns
// the time of the last event that process sent (zero if none), where the
// gap before the next one starts.
func (p *Pipeline) End() time.Time {
	p.flushStreams(time.Now(), true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.cur {
		p.prev[k] += v
	}
	p.cur = map[string]uint64{}
	last := p.lastEvent
	p.lastEvent = time.Time{}
	return last
}

// flushStreams emits what the decoder holds for connections idle for a
// while, or everything (all) when the stream ended.
func (p *Pipeline) flushStreams(now time.Time, all bool) {
	p.decMu.Lock()
	defer p.decMu.Unlock()
	p.dec.Flush(now, all, p.keep)
	p.flushOut()
}

// Record writes a host record about the module (a gap, a notice) to the
// sink at once; an error is logged.
func (p *Pipeline) Record(ev sdk.Event) {
	if err := p.sink.Write([]sdk.Event{ev}); err != nil {
		p.logger.Error("writing a host record", "kind", ev.Kind, "error", err)
	}
}

// Stats is what the exit summary and the metrics report of a module's
// data.
type Stats struct {
	Events uint64
	Losses []pluginhost.Counter // summed over every plugin process, by name
	Stream stream.Stats         // the HTTP stream decoder's counters
}

// Lost is the sum of every loss counter (not the information counters,
// named with sdk.InfoCounterPrefix, nor the counters of data captured in
// part, named with sdk.TruncatedCounterPrefix).
func (s Stats) Lost() uint64 {
	var n uint64
	for _, c := range s.Losses {
		if !strings.HasPrefix(c.Name, sdk.InfoCounterPrefix) && !strings.HasPrefix(c.Name, sdk.TruncatedCounterPrefix) {
			n += c.Value
		}
	}
	return n
}

// CounterTruncatedRecords is the counter of records a module captured in
// part (the bytes not copied are in truncated_bytes).
const CounterTruncatedRecords = sdk.TruncatedCounterPrefix + "records"

// Truncated is the count of records that reached the host cut short
// (the counter truncated_records).
func (s Stats) Truncated() uint64 {
	for _, c := range s.Losses {
		if c.Name == CounterTruncatedRecords {
			return c.Value
		}
	}
	return 0
}

// Stats returns the module's counts so far.
func (p *Pipeline) Stats() Stats {
	p.decMu.Lock()
	ss := p.dec.Stats()
	p.decMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	sum := map[string]uint64{}
	for k, v := range p.prev {
		sum[k] += v
	}
	for k, v := range p.cur {
		sum[k] += v
	}
	st := Stats{Events: p.events, Stream: ss}
	for k, v := range sum {
		st.Losses = append(st.Losses, pluginhost.Counter{Name: k, Value: v})
	}
	sort.Slice(st.Losses, func(i, j int) bool { return st.Losses[i].Name < st.Losses[j].Name })
	return st
}
