package supervise

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/output"
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

// Backoff between restarts of a dead plugin.
const (
	backoffFirst = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	// stableAfter resets the backoff: a plugin that ran this long before
	// dying is restarted quickly again.
	stableAfter = time.Minute
)

// Runner owns one module: it streams its events into the sink and
// restarts its plugin when it dies.
type Runner struct {
	plugin      Plugin
	settingsFor SettingsFunc
	transport   pluginhost.Transport
	sink        Sink
	logger      hclog.Logger

	// dec joins and decodes RouteStream events (HTTP); decMu guards it
	// and out between the stream and the idle flusher.
	decMu sync.Mutex
	dec   *stream.Decoder
	out   *outBatch      // what goes to the sink next
	free  chan *outBatch // batches the outputs are done with

	malformedLog time.Time      // when a malformed batch was last logged
	gov          *prio.Governor // told when the input backs up; may be nil

	mu       sync.Mutex
	events   uint64
	restarts int
	state    string
	probes   [2]int            // probes attached and binaries probed by the current plugin
	prev     map[string]uint64 // counters of earlier plugin processes
	cur      map[string]uint64 // counters of the current one
	pid      int
	// lastEvent is the time of the last event the current plugin process
	// sent: where a gap starts when it dies.
	lastEvent time.Time
}

// SettingsFunc returns a module's settings for the plugin that described
// itself as info (a plugin launched for the first time needs its schema to
// decode the module's config block).
type SettingsFunc func(info sdk.Info) (sdk.Settings, error)

// NewRunner prepares a runner for a module.
func NewRunner(p Plugin, settings SettingsFunc, t pluginhost.Transport, sink Sink, logger hclog.Logger) *Runner {
	r := &Runner{plugin: p, settingsFor: settings, transport: t, sink: sink, logger: logger.Named(p.Name),
		prev: map[string]uint64{}, cur: map[string]uint64{}, dec: stream.New(stream.Options{}),
		free: make(chan *outBatch, freeBatches), state: StateFailed, probes: [2]int{-1, -1}}
	r.out = r.newOutBatch()
	return r
}

// outBatch is a batch of events for the sink with the copies of their
// payloads and fields. The sink keeps it until its outputs are done, then
// it comes back through Runner.free.
type outBatch struct {
	events  []sdk.Event
	arena   []byte
	farena  []sdk.Field
	release func()
}

// freeBatches bounds the batches kept for reuse; the outputs' queues bound
// how many are in flight.
const freeBatches = 8

func (r *Runner) newOutBatch() *outBatch {
	select {
	case b := <-r.free:
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
		case r.free <- b:
		default:
		}
	}
	return b
}

// States of a module, as Stats reports them.
const (
	StateRunning    = "running"    // its plugin streams events
	StateRestarting = "restarting" // its plugin died and is being relaunched
	StateFailed     = "failed"     // it could not start, or the last relaunch failed; retried with backoff
)

// Stats is what the exit summary and the metrics report of a module.
type Stats struct {
	Module   string
	Events   uint64
	Restarts int
	Losses   []pluginhost.Counter // summed over every plugin process, by name
	State    string               // StateRunning, StateRestarting or StateFailed
	// Probes and Binaries count what the current plugin attached; -1
	// when it does not say (or is not running).
	Probes, Binaries int
}

// Lost is the sum of every loss counter (not the information counters,
// named with sdk.InfoCounterPrefix).
func (s Stats) Lost() uint64 {
	var n uint64
	for _, c := range s.Losses {
		if !strings.HasPrefix(c.Name, sdk.InfoCounterPrefix) {
			n += c.Value
		}
	}
	return n
}

// Stats returns the module's counts so far.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := map[string]uint64{}
	for k, v := range r.prev {
		sum[k] += v
	}
	for k, v := range r.cur {
		sum[k] += v
	}
	st := Stats{Module: r.plugin.Name, Events: r.events, Restarts: r.restarts, State: r.state, Probes: r.probes[0], Binaries: r.probes[1]}
	for k, v := range sum {
		st.Losses = append(st.Losses, pluginhost.Counter{Name: k, Value: v})
	}
	sort.Slice(st.Losses, func(i, j int) bool { return st.Losses[i].Name < st.Losses[j].Name })
	return st
}

// setState records the module's state and what l (nil: no plugin runs)
// attached.
func (r *Runner) setState(state string, l *Launched) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = state
	r.probes = [2]int{-1, -1}
	if l != nil {
		r.probes = [2]int{l.probes, l.binaries}
	}
}

// Run streams the started module l until ctx is cancelled, then stops it
// gracefully. When the plugin dies it is relaunched, configured and
// started again with capped backoff; other modules are not affected. A nil
// l is a module that could not start (startErr says why): Run keeps trying
// to start it the same way.
//
// A gap is logged and written as a host.gap record as soon as it is
// noticed, so that a reader of the output knows at once; the record is
// stamped with the time of the module's last event before the gap (or of
// its start), which its field last_event repeats, and noticed says when
// the host saw it. When capture resumes, a host.notice record says so:
// gap_started (the same last_event), resumed and gap_seconds between them.
func (r *Runner) Run(ctx context.Context, l *Launched, startErr error) {
	gapStart := time.Now()
	for {
		reason, err := "the module could not start: nothing is captured until it does", startErr
		delay := backoffFirst
		if l != nil {
			r.setState(StateRunning, l)
			r.mu.Lock()
			r.pid = l.PID()
			r.lastEvent = time.Time{}
			r.mu.Unlock()
			began := time.Now()
			err = r.stream(ctx, l)
			if errors.Is(err, errUnresponsive) {
				l.killNow()
			} else {
				l.Kill()
			}
			if ctx.Err() != nil {
				return
			}
			reason = "the plugin died: nothing is captured until it restarts"
			r.setState(StateRestarting, nil)
			if time.Since(began) < stableAfter {
				delay = min(backoffMax, backoffFirst<<min(r.restartCount(), 6))
			}
			gapStart = began
			r.mu.Lock()
			if !r.lastEvent.IsZero() {
				gapStart = r.lastEvent
			}
			r.mu.Unlock()
		}
		if ctx.Err() != nil {
			return // stopped before the module ever started
		}
		noticed := time.Now()
		last := gapStart.UTC().Format(time.RFC3339Nano)
		r.logger.Error(reason, "error", err, "last_event", last)
		r.write(output.Gap(gapStart, r.plugin.Name, reason,
			sdk.Field{Key: "error", Value: errString(err)},
			sdk.Field{Key: "last_event", Value: last},
			sdk.Field{Key: "noticed", Value: noticed.UTC().Format(time.RFC3339Nano)}))
		r.mu.Lock()
		r.pid = 0
		for k, v := range r.cur {
			r.prev[k] += v
		}
		r.cur = map[string]uint64{}
		r.mu.Unlock()
		if l = r.retry(ctx, delay); l == nil {
			return
		}
		resumed := time.Now()
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
		r.write(output.Notice(resumed, r.plugin.Name, "module started; capture resumed",
			sdk.Field{Key: "gap_started", Value: last},
			sdk.Field{Key: "resumed", Value: resumed.UTC().Format(time.RFC3339Nano)},
			sdk.Field{Key: "gap_seconds", Value: strconv.FormatFloat(resumed.Sub(gapStart).Seconds(), 'f', 3, 64)}))
	}
}

// retry launches, configures and starts the module until it works, waiting
// delay before the first try and doubling it (up to backoffMax) after each
// failure. It returns nil when ctx ends first.
func (r *Runner) retry(ctx context.Context, delay time.Duration) *Launched {
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		l, err := r.launch(ctx)
		if err == nil {
			return l
		}
		r.setState(StateFailed, nil)
		r.logger.Error("restart failed", "attempt", attempt, "next_in", min(backoffMax, delay*2), "error", err)
		delay = min(backoffMax, delay*2)
	}
}

func (r *Runner) restartCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts
}

// launch starts a plugin process, configures the module and starts it.
func (r *Runner) launch(ctx context.Context) (*Launched, error) {
	l, err := Launch(ctx, r.plugin, r.logger)
	if err != nil {
		return nil, err
	}
	settings, err := r.settingsFor(l.Info)
	if err == nil {
		var ds sdk.Diagnostics
		ds, err = l.Configure(ctx, settings, r.transport)
		if err == nil && ds.HasErrors() {
			err = ds
		}
	}
	if err == nil {
		err = l.Start(ctx)
	}
	if err != nil {
		l.Kill()
		return nil, err
	}
	return l, nil
}

// stream reads l's events until the stream ends. When ctx is cancelled it
// asks the module to stop and keeps reading until the last batch.
func (r *Runner) stream(ctx context.Context, l *Launched) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- l.Client.Events(sctx, r.deliver)
	}()
	// Whatever ends the stream, what the decoder holds is written.
	defer r.flushStreams(time.Now(), true)
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("the event stream ended without a stop")
			}
			return err
		case now := <-idle.C:
			r.flushStreams(now, false)
		case <-ctx.Done():
			waiting = false
		}
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), stopTimeout)
	defer stopCancel()
	if err := l.Client.Stop(stopCtx); err != nil {
		r.logger.Error("stopping module", "error", err)
	}
	select {
	case err := <-done:
		return err
	case <-stopCtx.Done():
		return fmt.Errorf("module %s did not finish its event stream within %v: %w", r.plugin.Name, stopTimeout, errUnresponsive)
	}
}

// errUnresponsive is wrapped by stream's error when the plugin did not
// finish within stopTimeout of being asked to stop: it is killed at once.
var errUnresponsive = errors.New("the plugin does not respond")

// SetGovernor makes the runner tell g whether its input backs up. Call it
// before Run.
func (r *Runner) SetGovernor(g *prio.Governor) { r.gov = g }

// behindBytes is how much input waiting means the runner is behind when
// the data channel's capacity is unknown: three batches.
const behindBytes = 3 * pluginhost.DefaultMaxBatchBytes

// behind tells whether b says the runner is behind: three quarters of
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

func (r *Runner) deliver(b *pluginhost.Batch) error {
	r.gov.Report(r.plugin.Name, behind(b))
	if b.Err != nil && time.Since(r.malformedLog) > malformedLogEvery {
		// Counted in the batch's losses (and the exit summary) every time.
		r.malformedLog = time.Now()
		r.logger.Error("dropping the rest of a batch the plugin sent malformed", "error", b.Err)
	}
	r.mu.Lock()
	r.events += uint64(len(b.Events))
	if n := len(b.Events); n > 0 {
		r.lastEvent = b.Events[n-1].Time
	}
	for _, c := range b.Losses {
		r.cur[c.Name] = c.Value
	}
	r.mu.Unlock()
	r.decMu.Lock()
	defer r.decMu.Unlock()
	for i := range b.Events {
		ev := &b.Events[i]
		if ev.Route == sdk.RouteStream {
			r.dec.Feed(ev, r.keep)
			continue
		}
		r.keep(ev)
	}
	r.flushOut()
	return nil
}

// keep copies an event (valid only during the call) into out. Payloads and
// fields go to the batch's arenas: a slice taken before an arena grows
// keeps pointing at the old array, which stays valid.
func (r *Runner) keep(ev *sdk.Event) {
	b := r.out
	c := *ev
	start := len(b.arena)
	b.arena = append(b.arena, ev.Payload...)
	c.Payload = b.arena[start:len(b.arena):len(b.arena)]
	fstart := len(b.farena)
	b.farena = append(b.farena, ev.Fields...)
	c.Fields = b.farena[fstart:len(b.farena):len(b.farena)]
	b.events = append(b.events, c)
}

// flushOut hands out to the sink, which gives it back when its outputs
// are done, and starts the next batch. decMu must be held.
func (r *Runner) flushOut() {
	if len(r.out.events) == 0 {
		return
	}
	// A drop is counted by the output and shown in the summary.
	_ = r.sink.WriteOwned(r.out.events, r.out.release)
	r.out = r.newOutBatch()
}

// malformedLogEvery bounds how often a plugin sending malformed batches is
// logged.
const malformedLogEvery = 5 * time.Second

// maxArena bounds the payload copies kept for reuse between batches.
const maxArena = 4 << 20

// flushStreams emits what the decoder holds for connections idle for a
// while, or everything (all) when the stream ended.
func (r *Runner) flushStreams(now time.Time, all bool) {
	r.decMu.Lock()
	defer r.decMu.Unlock()
	r.dec.Flush(now, all, r.keep)
	r.flushOut()
}

// StreamStats returns the stream decoder's counters.
func (r *Runner) StreamStats() stream.Stats {
	r.decMu.Lock()
	defer r.decMu.Unlock()
	return r.dec.Stats()
}

// write hands a host record about this module to the sink.
func (r *Runner) write(ev sdk.Event) {
	if err := r.sink.Write([]sdk.Event{ev}); err != nil {
		r.logger.Error("writing a host record", "kind", ev.Kind, "error", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
