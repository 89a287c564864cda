package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/lifecycle"
	"github.com/ecaphost/ecaphost/host/internal/metrics"
	"github.com/ecaphost/ecaphost/host/internal/output"
	"github.com/ecaphost/ecaphost/host/internal/prio"
	"github.com/ecaphost/ecaphost/host/internal/receive"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	fs := newFlagSet("run", `run [flags] [FILE]

Runs the capture modules FILE names and writes their events to its outputs
until SIGINT or SIGTERM, then detaches every probe, flushes the outputs and
prints a summary (events and losses per module). Without FILE, an embedded
config runs the bash module with text output to stdout.

Each module launches and starts on its own; a plugin that dies or cannot
start is restarted with capped backoff while the others keep running; the
gap appears in the output as a host.gap record. A second SIGINT stops at
once, killing every plugin (which detaches its probes).

SIGHUP reopens every file output: after logrotate (or mv) moved a file,
the next events go to a new file of its name, created 0600.

Every plugin binary is checked (owner, mode, directories) on the file as
opened, before each exec, and that file is what runs. When a lock file is
in force (--lock, or ecaphost.lock beside FILE), every plugin must also
match the SHA-256 it records; `+"`ecaphost plugins lock`"+` writes it.`, stderr, &g)
	lockPath := fs.String("lock", "", "lock file of approved plugin checksums (default: ecaphost.lock beside FILE, when present)")
	startTimeout := fs.Duration("start-timeout", lifecycle.DefaultStartTimeout, "how long a module may take to load its bytecode and attach its probes")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitConfig
	}
	in, err := loadInputs(&g, fs.Arg(0), *lockPath, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	logger, name, src, lf := in.logger, in.name, in.src, in.lock
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forced := make(chan struct{})
	stopSignals := handleSignals(cancel, forced, logger)
	defer stopSignals()

	p, diags := resolve(name, src, lf)
	writeDiags(stderr, name, src, diags)
	if p == nil {
		return exitConfig
	}
	// Outputs open before any plugin runs: a bad path stops us while
	// nothing is loaded.
	var outs output.Group
	cgroups := cgroupResolver(logger)
	for _, oc := range p.file.Outputs {
		var w output.Output
		var err error
		if oc.Kind == config.OutputOTLP {
			w, err = output.OpenOTLP(oc.OTLP, output.OTLPOptions{Version: Version, Logger: logger, Cgroups: cgroups})
		} else {
			w, err = output.Open(oc, stdout, output.Options{Logger: logger, Cgroups: cgroups})
		}
		if err != nil {
			writeDiags(stderr, name, src, hcl.Diagnostics{outputDiag(oc, err)})
			closeAll(outs, logger)
			return exitConfig
		}
		outs = append(outs, w)
	}
	for _, w := range outs {
		if o, ok := w.(*output.OTLP); ok {
			o.SetNotify(func(ev sdk.Event) { _ = outs.Write([]sdk.Event{ev}) })
		}
	}
	// SIGHUP reopens every file output (logrotate's create mode).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reopenOnHangup(ctx, hup, outs, logger)
	// Metrics listen before any probe is attached too: a port in use
	// stops us while nothing is loaded.
	var running atomic.Pointer[[]capture]
	var metricsSrv *metrics.Server
	if mc := p.file.Metrics; mc != nil {
		var err error
		metricsSrv, err = serveMetrics(mc.Listen, &running, outs)
		if err != nil {
			rng := mc.DeclRange
			writeDiags(stderr, name, src, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot serve metrics", Detail: err.Error(), Subject: &rng}})
			closeAll(outs, logger)
			return exitConfig
		}
		logger.Info("serving metrics", "url", "http://"+metricsSrv.Addr().String()+"/metrics")
		defer metricsSrv.Close()
	}
	began := time.Now()
	var gov *prio.Governor
	if p.file.Priority == config.PriorityBackground {
		var err error
		if gov, err = prio.New(); err != nil {
			logger.Warn("staying at normal priority", "error", err)
		}
	}
	var transport pluginhost.Transport
	if gov != nil {
		// The plugins, at normal priority, see their kernel buffers fill
		// before a host in the background gets to run: they may boost it.
		transport.BoostPID = uint32(os.Getpid())
	}
	captures := make([]capture, len(p.modules))
	for i, m := range p.modules {
		m.plugin.StartTimeout = *startTimeout
		data := receive.New(m.plugin.Name, outs, gov, logger)
		captures[i] = capture{life: lifecycle.NewRunner(m.plugin, m.settingsFor(name, src, false), transport, data, logger), data: data}
	}
	running.Store(&captures)
	// Every module launches and starts on its own: one whose plugin is
	// slow or stuck delays no other. One that fails to launch or start is
	// reported, named, and retried by its runner while the others
	// capture; a configuration error stops everything.
	type first struct {
		i     int
		diags hcl.Diagnostics
		err   error // did not start (nil: started)
	}
	firsts := make(chan first, len(p.modules))
	var wg sync.WaitGroup
	for i, m := range p.modules {
		wg.Go(func() {
			diags, err := m.launch(ctx, false, transport, logger)
			if diags.HasErrors() {
				firsts <- first{i: i, diags: diags}
				return
			}
			if err == nil {
				if err = m.launched.Start(ctx); err != nil {
					m.launched.Kill()
					m.launched = nil
				}
			}
			firsts <- first{i: i, diags: diags, err: err}
			captures[i].life.Run(ctx, m.launched, err)
		})
	}
	startErrs := make([]error, len(p.modules))
	started, configFailed := 0, false
	for range p.modules {
		f := <-firsts
		writeDiags(stderr, name, src, f.diags)
		m := p.modules[f.i]
		switch {
		case f.diags.HasErrors():
			configFailed = true
			cancel()
		case f.err != nil:
			startErrs[f.i] = f.err
			if ctx.Err() == nil {
				logger.Error("module did not start; the others go on, and it is retried", "module", m.decl.Name, "error", f.err)
			}
		default:
			started++
			logger.Info("module started", "module", m.decl.Name, "version", m.launched.Info.Version, "plugin_pid", m.launched.PID())
		}
	}
	code := exitOK
	switch {
	case configFailed:
		code = exitConfig
	case started == 0 && ctx.Err() == nil:
		fmt.Fprintf(stderr, "ecaphost: no module could start:\n")
		for i, m := range p.modules {
			fmt.Fprintf(stderr, "  %s: %v\n", m.decl.Name, startErrs[i])
		}
		cancel()
		code = exitFail
	case ctx.Err() == nil:
		logger.Info("capturing; SIGINT or SIGTERM stops (twice: at once)", "modules", len(captures), "started", started, "outputs", len(outs))
	}
	<-ctx.Done()
	if code == exitOK {
		logger.Info("stopping: detaching probes and flushing outputs")
	}
	gov.Stop()
	if boosts, byPlugins, err := gov.Stats(); boosts > 0 || byPlugins > 0 || err != nil {
		logger.Info("the host left the background to keep up", "times", boosts, "boosted_by_plugins", byPlugins, "error", err)
	}
	if waitOrForced(&wg, forced) {
		code = exitFail
	}
	closeAll(outs, logger)
	if code != exitConfig {
		writeSummary(stderr, time.Since(began), captures, outs)
	}
	return code
}

// handleSignals cancels the capture at the first SIGINT or SIGTERM; at the
// second it kills every plugin's process group (which detaches their
// probes) and closes forced. It returns a function that stops listening.
func handleSignals(cancel func(), forced chan struct{}, logger hclog.Logger) func() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			n := lifecycle.KillAll()
			logger.Warn("stopping at once: every plugin killed, which detaches its probes; their last events are lost", "plugins", n)
			close(forced)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// waitOrForced waits for the runners to stop, or, once forced is closed
// (a second signal), at most forcedWait more; it reports whether the stop
// was forced.
func waitOrForced(wg *sync.WaitGroup, forced chan struct{}) bool {
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return false
	case <-forced:
	}
	select {
	case <-stopped:
	case <-time.After(forcedWait):
	}
	return true
}

// forcedWait bounds the wait for the runners after every plugin was
// killed.
const forcedWait = 500 * time.Millisecond

// outputDiag is the diagnostic of the output block oc that cannot be
// opened.
func outputDiag(oc config.Output, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot open output", Detail: err.Error()}
	if oc.DeclRange.Filename != "" {
		rng := oc.DeclRange
		d.Subject = &rng
	}
	return d
}

// reopenOnHangup reopens the file outputs on each signal from hup until
// ctx ends.
func reopenOnHangup(ctx context.Context, hup <-chan os.Signal, outs output.Group, logger interface {
	Info(string, ...any)
	Error(string, ...any)
}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		for _, o := range outs {
			if w, ok := o.(*output.Writer); ok {
				if err := w.Reopen(); err != nil {
					logger.Error("SIGHUP: reopening output; it goes on writing to the file it had", "output", w.Name(), "error", err)
				}
			}
		}
		logger.Info("SIGHUP: file outputs reopened")
	}
}

// capture is one module being captured: its plugin's lifecycle, and the
// data path its events take.
type capture struct {
	life *lifecycle.Runner
	data *receive.Pipeline
}

// serveMetrics serves the metrics of captures (once stored) and outs on
// addr.
func serveMetrics(addr string, captures *atomic.Pointer[[]capture], outs output.Group) (*metrics.Server, error) {
	src := metrics.Sources{
		Modules: func() []metrics.Module {
			cs := captures.Load()
			if cs == nil {
				return nil
			}
			var ms []metrics.Module
			for _, c := range *cs {
				st, ds := c.life.Stats(), c.data.Stats()
				m := metrics.Module{Name: st.Module, Events: ds.Events, Restarts: st.Restarts, State: st.State,
					Probes: st.Probes, Binaries: st.Binaries, Losses: map[string]uint64{}, Info: map[string]uint64{},
					Truncated: map[string]uint64{}}
				for _, l := range ds.Losses {
					if name, ok := strings.CutPrefix(l.Name, sdk.InfoCounterPrefix); ok {
						m.Info[name] = l.Value // work done, not a loss
						continue
					}
					if name, ok := strings.CutPrefix(l.Name, sdk.TruncatedCounterPrefix); ok {
						m.Truncated[name] = l.Value // captured in part
						continue
					}
					m.Losses[l.Name] = l.Value
				}
				ms = append(ms, m)
			}
			return ms
		},
		Outputs: func() []metrics.Output {
			list := make([]metrics.Output, 0, len(outs))
			for _, o := range outs {
				list = append(list, metrics.Output{Name: o.Name(), Written: o.Written(), Dropped: o.Dropped(), Bytes: o.Bytes(), QueueDepth: o.QueueDepth()})
			}
			return list
		},
	}
	h, err := metrics.Handler(src, Version)
	if err != nil {
		return nil, err
	}
	return metrics.Serve(addr, h)
}

func closeAll(outs output.Group, logger interface{ Error(string, ...any) }) {
	for _, w := range outs {
		if err := w.Close(); err != nil {
			logger.Error("closing output", "output", w.Name(), "error", err)
		}
	}
}

func writeSummary(w io.Writer, took time.Duration, captures []capture, outs output.Group) {
	fmt.Fprintf(w, "\necaphost: captured for %s\n", took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tEVENTS\tLOST\tTRUNCATED\tRESTARTS\tLOSS COUNTERS")
	for _, c := range captures {
		st, ds := c.life.Stats(), c.data.Stats()
		detail := ""
		for _, l := range ds.Losses {
			if l.Value > 0 {
				detail += fmt.Sprintf("%s=%d ", l.Name, l.Value)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", st.Module, ds.Events, ds.Lost(), ds.Truncated(), st.Restarts, detail)
	}
	tw.Flush()
	for _, c := range captures {
		ss := c.data.Stats().Stream
		if ss.HTTP1Messages+ss.HTTP2Messages+ss.PassthroughBytes == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d HTTP/1 and %d HTTP/2 messages decoded, %d bytes shown undecoded, %d messages truncated, %d protocol errors, %d framings lost to bytes not captured\n",
			c.life.Stats().Module, ss.HTTP1Messages, ss.HTTP2Messages, ss.PassthroughBytes, ss.Truncated, ss.ProtocolErrors, ss.Lost)
	}
	for _, o := range outs {
		fmt.Fprintf(w, "output %s: %d events written, %d dropped\n", o.Name(), o.Written(), o.Dropped())
	}
}

// cgroupResolver returns what turns the events' cgroup ids into paths and
// containers, nil (ids alone) when no cgroup2 hierarchy is mounted.
func cgroupResolver(logger hclog.Logger) output.Cgroups {
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		logger.Warn("events will show cgroup ids without paths or containers", "error", err)
		return nil
	}
	return cgroup.NewResolver(mount)
}
