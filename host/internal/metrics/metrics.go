package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Module is what the metrics say of one module.
type Module struct {
	Name     string
	Events   uint64
	Restarts int
	Losses   map[string]uint64 // by loss counter name
	// Info holds the module's counters of work done (sdk.InfoCounterPrefix,
	// without it), such as the files node-wide discovery probed.
	Info map[string]uint64
	// Truncated holds the module's counters of data captured in part
	// (sdk.TruncatedCounterPrefix, without it): "records" cut short and
	// "bytes" not copied.
	Truncated map[string]uint64
	// State is "running", "restarting" or "failed".
	State string
	// Probes and Binaries count what the module attached; -1 when unknown.
	Probes, Binaries int
}

// Output is what the metrics say of one output.
type Output struct {
	Name                    string
	Written, Dropped, Bytes uint64
	QueueDepth              int
}

// Sources reads the current state. Both functions are called on every
// scrape, from the HTTP server's goroutines.
type Sources struct {
	Modules func() []Module
	Outputs func() []Output
}

// States lists every module state, so each has a series (0 or 1).
var States = []string{"running", "restarting", "failed"}

var (
	descEvents   = prometheus.NewDesc("ecaphost_events_total", "Events the module's plugin sent, over every plugin process.", []string{"module"}, nil)
	descLost     = prometheus.NewDesc("ecaphost_lost_events_total", "Events the module lost, by the module's loss counter.", []string{"module", "counter"}, nil)
	descRestarts = prometheus.NewDesc("ecaphost_plugin_restarts_total", "Times the module's plugin was relaunched after it died or could not start.", []string{"module"}, nil)
	descState    = prometheus.NewDesc("ecaphost_module_state", "1 for the module's current state (running, restarting, failed), 0 for the others.", []string{"module", "state"}, nil)
	descProbes   = prometheus.NewDesc("ecaphost_module_probes", "Probes the module's plugin attached.", []string{"module"}, nil)
	descBinaries = prometheus.NewDesc("ecaphost_module_probed_binaries", "Binaries the module's plugin attached uprobes to.", []string{"module"}, nil)
	descInfo     = prometheus.NewDesc("ecaphost_module_info_total", "The module's counters of work done, not losses (e.g. discovery_files_probed: files node-wide discovery probed).", []string{"module", "counter"}, nil)
	descTrunc    = prometheus.NewDesc("ecaphost_truncated_total", "Data the module captured in part, by counter: records that reached the host cut short (records, overload_records: cut because the kernel buffer was over half full) and the bytes not copied (bytes).", []string{"module", "counter"}, nil)
	descWritten  = prometheus.NewDesc("ecaphost_output_events_total", "Events the output wrote (a file) or delivered (an OTLP Collector acknowledged them).", []string{"output"}, nil)
	descDropped  = prometheus.NewDesc("ecaphost_output_dropped_events_total", "Events the output dropped: its queue was full or the write or export failed.", []string{"output"}, nil)
	descBytes    = prometheus.NewDesc("ecaphost_output_bytes_total", "Bytes the output wrote (formatted events; for OTLP, payloads and fields delivered).", []string{"output"}, nil)
	descQueue    = prometheus.NewDesc("ecaphost_output_queue_events", "Events waiting in the output's queue.", []string{"output"}, nil)
)

type collector struct{ src Sources }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descLost, descRestarts, descState, descProbes, descBinaries, descInfo, descTrunc, descWritten, descDropped, descBytes, descQueue} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.src.Modules() {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(m.Events), m.Name)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(m.Restarts), m.Name)
		for name, v := range m.Losses {
			ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(v), m.Name, name)
		}
		for name, v := range m.Info {
			ch <- prometheus.MustNewConstMetric(descInfo, prometheus.CounterValue, float64(v), m.Name, name)
		}
		for name, v := range m.Truncated {
			ch <- prometheus.MustNewConstMetric(descTrunc, prometheus.CounterValue, float64(v), m.Name, name)
		}
		for _, s := range States {
			v := 0.0
			if s == m.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, m.Name, s)
		}
		if m.Probes >= 0 {
			ch <- prometheus.MustNewConstMetric(descProbes, prometheus.GaugeValue, float64(m.Probes), m.Name)
			ch <- prometheus.MustNewConstMetric(descBinaries, prometheus.GaugeValue, float64(m.Binaries), m.Name)
		}
	}
	for _, o := range c.src.Outputs() {
		ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(o.Written), o.Name)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(o.Dropped), o.Name)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(o.Bytes), o.Name)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(o.QueueDepth), o.Name)
	}
}

// Handler returns the handler of /metrics and /healthz. /healthz answers
// 200 "ok" while every module runs, 503 with each module's state
// otherwise.
func Handler(src Sources, version string) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "ecaphost_build_info",
		Help:        "Always 1; the version label is ecaphost's.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{
		collector{src},
		info,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		var bad []string
		mods := src.Modules()
		sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
		for _, m := range mods {
			if m.State != "running" {
				bad = append(bad, m.Name+" "+m.State)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(bad) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not running: %s\n", strings.Join(bad, ", "))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux, nil
}

// Server serves Handler on one address.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Serve listens on addr and serves h in the background.
func Serve(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting scrapes in progress finish for up to
// 2 s.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
