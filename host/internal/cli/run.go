package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/metrics"
	"github.com/ecaphost/ecaphost/host/internal/output"
	"github.com/ecaphost/ecaphost/host/internal/prio"
	"github.com/ecaphost/ecaphost/host/internal/supervise"
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

A plugin that dies is restarted with capped backoff while the others keep
running; the gap appears in the output as a host.gap record.

SIGHUP reopens every file output: after logrotate (or mv) moved a file,
the next events go to a new file of its name, created 0600.

When a lock file is in force (--lock, or ecaphost.lock beside FILE), every
plugin must match the SHA-256 it records, checked again before each exec;
`+"`ecaphost plugins lock`"+` writes it.`, stderr, &g)
	lockPath := fs.String("lock", "", "lock file of approved plugin checksums (default: ecaphost.lock beside FILE, when present)")
	startTimeout := fs.Duration("start-timeout", supervise.DefaultStartTimeout, "how long a module may take to load its bytecode and attach its probes")
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
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	p, diags := prepare(ctx, name, src, false, true, *startTimeout, lf, logger)
	writeDiags(stderr, name, src, diags)
	if p == nil {
		return exitConfig
	}
	// Outputs open before any probe is attached: a bad path stops us
	// while nothing is loaded.
	var outs output.Group
	cgroups := cgroupResolver(logger)
	for _, oc := range p.file.Outputs {
		var w output.Output
		var err error
		if oc.Kind == config.OutputOTLP {
			w, err = output.OpenOTLP(oc.OTLP, output.OTLPOptions{Version: Version, Logger: logger, Cgroups: cgroups})
		} else {
			w, err = output.Open(oc, stdout, cgroups)
		}
		if err != nil {
			d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot open output", Detail: err.Error()}
			if oc.DeclRange.Filename != "" {
				rng := oc.DeclRange
				d.Subject = &rng
			}
			writeDiags(stderr, name, src, hcl.Diagnostics{d})
			closeAll(outs, logger)
			p.kill()
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
	var running atomic.Pointer[[]*supervise.Runner]
	var metricsSrv *metrics.Server
	if mc := p.file.Metrics; mc != nil {
		var err error
		metricsSrv, err = serveMetrics(mc.Listen, &running, outs)
		if err != nil {
			rng := mc.DeclRange
			writeDiags(stderr, name, src, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot serve metrics", Detail: err.Error(), Subject: &rng}})
			closeAll(outs, logger)
			p.kill()
			return exitConfig
		}
		logger.Info("serving metrics", "url", "http://"+metricsSrv.Addr().String()+"/metrics")
		defer metricsSrv.Close()
	}
	began := time.Now()
	// Start every module; one that fails (bad attach, start timeout, a
	// plugin that would not launch) is reported, named, and retried by
	// its runner while the others capture.
	runners := make([]*supervise.Runner, len(p.modules))
	startErrs := make([]error, len(p.modules))
	failed := 0
	for i, m := range p.modules {
		err := m.launchErr
		if err == nil {
			err = m.launched.Start(ctx)
		}
		if err != nil {
			logger.Error("module did not start; the others go on, and it is retried", "module", m.decl.Name, "error", err)
			if m.launched != nil {
				m.launched.Kill()
				m.launched = nil
			}
			startErrs[i] = err
			failed++
		} else {
			logger.Info("module started", "module", m.decl.Name, "version", m.launched.Info.Version, "plugin_pid", m.launched.PID())
		}
		runners[i] = supervise.NewRunner(m.plugin, m.settingsFor(name, src, false), pluginhost.Transport{}, outs, logger)
	}
	if failed == len(p.modules) && failed > 0 {
		fmt.Fprintf(stderr, "ecaphost: no module could start:\n")
		for i, m := range p.modules {
			fmt.Fprintf(stderr, "  %s: %v\n", m.decl.Name, startErrs[i])
		}
		closeAll(outs, logger)
		return exitFail
	}
	running.Store(&runners)
	var gov *prio.Governor
	if p.file.Priority == config.PriorityBackground {
		var err error
		if gov, err = prio.New(); err != nil {
			logger.Warn("staying at normal priority", "error", err)
		}
		for _, r := range runners {
			r.SetGovernor(gov)
		}
	}
	var wg sync.WaitGroup
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Run(ctx, p.modules[i].launched, startErrs[i])
		}()
	}
	logger.Info("capturing; SIGINT or SIGTERM stops", "modules", len(runners), "outputs", len(outs))
	<-ctx.Done()
	logger.Info("stopping: detaching probes and flushing outputs")
	gov.Stop()
	if boosts, err := gov.Stats(); boosts > 0 || err != nil {
		logger.Info("the host left the background to keep up", "times", boosts, "error", err)
	}
	wg.Wait()
	closeAll(outs, logger)
	writeSummary(stderr, time.Since(began), runners, outs)
	return exitOK
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

// serveMetrics serves the metrics of runners (once stored) and outs on
// addr.
func serveMetrics(addr string, runners *atomic.Pointer[[]*supervise.Runner], outs output.Group) (*metrics.Server, error) {
	src := metrics.Sources{
		Modules: func() []metrics.Module {
			rs := runners.Load()
			if rs == nil {
				return nil
			}
			var ms []metrics.Module
			for _, r := range *rs {
				st := r.Stats()
				m := metrics.Module{Name: st.Module, Events: st.Events, Restarts: st.Restarts, State: st.State,
					Probes: st.Probes, Binaries: st.Binaries, Losses: map[string]uint64{}}
				for _, c := range st.Losses {
					m.Losses[c.Name] = c.Value
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

func writeSummary(w io.Writer, took time.Duration, runners []*supervise.Runner, outs output.Group) {
	fmt.Fprintf(w, "\necaphost: captured for %s\n", took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tEVENTS\tLOST\tRESTARTS\tLOSS COUNTERS")
	for _, r := range runners {
		st := r.Stats()
		detail := ""
		for _, c := range st.Losses {
			if c.Value > 0 {
				detail += fmt.Sprintf("%s=%d ", c.Name, c.Value)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", st.Module, st.Events, st.Lost(), st.Restarts, detail)
	}
	tw.Flush()
	for _, r := range runners {
		ss := r.StreamStats()
		if ss.HTTP1Messages+ss.HTTP2Messages+ss.PassthroughBytes == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: %d HTTP/1 and %d HTTP/2 messages decoded, %d bytes shown undecoded, %d messages truncated, %d protocol errors\n",
			r.Stats().Module, ss.HTTP1Messages, ss.HTTP2Messages, ss.PassthroughBytes, ss.Truncated, ss.ProtocolErrors)
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
