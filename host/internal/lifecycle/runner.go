package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/output"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
)

// Receiver takes what a module's plugin processes send, one process after
// another (receive.Pipeline).
type Receiver interface {
	// Deliver is given each batch of the running process's stream.
	Deliver(b *pluginhost.Batch) error
	// Idle is called every second while a stream runs.
	Idle(now time.Time)
	// End is told that a process's stream ended, and returns the time of
	// the last event it sent (zero if none).
	End() time.Time
	// Record writes a host record about the module.
	Record(ev sdk.Event)
}

// Backoff between restarts of a dead plugin.
const (
	backoffFirst = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	// stableAfter resets the backoff: a plugin that ran this long before
	// dying is restarted quickly again.
	stableAfter = time.Minute
)

// Runner owns one module: it streams its events into its Receiver and
// restarts its plugin when it dies.
type Runner struct {
	plugin      Plugin
	settingsFor SettingsFunc
	transport   pluginhost.Transport
	recv        Receiver
	logger      hclog.Logger

	mu       sync.Mutex
	restarts int
	state    string
	probes   [2]int // probes attached and binaries probed by the current plugin
}

// SettingsFunc returns a module's settings for the plugin that described
// itself as info (a plugin launched for the first time needs its schema to
// decode the module's config block).
type SettingsFunc func(info sdk.Info) (sdk.Settings, error)

// NewRunner prepares a runner for a module whose events go to recv.
func NewRunner(p Plugin, settings SettingsFunc, t pluginhost.Transport, recv Receiver, logger hclog.Logger) *Runner {
	return &Runner{plugin: p, settingsFor: settings, transport: t, recv: recv, logger: logger.Named(p.Name),
		state: StateFailed, probes: [2]int{-1, -1}}
}

// States of a module, as Stats reports them.
const (
	StateRunning    = "running"    // its plugin streams events
	StateRestarting = "restarting" // its plugin died and is being relaunched
	StateFailed     = "failed"     // it could not start, or the last relaunch failed; retried with backoff
)

// Stats is what the exit summary and the metrics report of a module's
// plugin (its events are counted by the Receiver).
type Stats struct {
	Module   string
	Restarts int
	State    string // StateRunning, StateRestarting or StateFailed
	// Probes and Binaries count what the current plugin attached; -1
	// when it does not say (or is not running).
	Probes, Binaries int
}

// Stats returns the module's state and counts so far.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Module: r.plugin.Name, Restarts: r.restarts, State: r.state, Probes: r.probes[0], Binaries: r.probes[1]}
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
			began := time.Now()
			err = r.stream(ctx, l)
			if errors.Is(err, errUnresponsive) {
				l.killNow()
			} else {
				l.Kill()
			}
			last := r.recv.End()
			if ctx.Err() != nil {
				return
			}
			reason = "the plugin died: nothing is captured until it restarts"
			r.setState(StateRestarting, nil)
			if time.Since(began) < stableAfter {
				delay = min(backoffMax, backoffFirst<<min(r.restartCount(), 6))
			}
			gapStart = began
			if !last.IsZero() {
				gapStart = last
			}
		}
		if ctx.Err() != nil {
			return // stopped before the module ever started
		}
		noticed := time.Now()
		last := gapStart.UTC().Format(time.RFC3339Nano)
		r.logger.Error(reason, "error", err, "last_event", last)
		r.recv.Record(output.Gap(gapStart, r.plugin.Name, reason,
			sdk.Field{Key: "error", Value: errString(err)},
			sdk.Field{Key: "last_event", Value: last},
			sdk.Field{Key: "noticed", Value: noticed.UTC().Format(time.RFC3339Nano)}))
		if l = r.retry(ctx, delay); l == nil {
			return
		}
		resumed := time.Now()
		r.mu.Lock()
		r.restarts++
		r.mu.Unlock()
		r.recv.Record(output.Notice(resumed, r.plugin.Name, "module started; capture resumed",
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

// stream runs l's event stream into the receiver until it ends. When ctx
// is cancelled it asks the module to stop and keeps reading until the
// last batch.
func (r *Runner) stream(ctx context.Context, l *Launched) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- l.Client.Events(sctx, r.recv.Deliver)
	}()
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
			r.recv.Idle(now)
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

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
