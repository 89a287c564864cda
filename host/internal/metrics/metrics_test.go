package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// value returns the value of the series of family name whose labels
// include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series of %s with %v", name, want)
	return 0
}

func TestHandler(t *testing.T) {
	state := "running"
	src := Sources{
		Modules: func() []Module {
			return []Module{{Name: "openssl", Events: 12, Restarts: 1, Losses: map[string]uint64{"ringbuf_full": 3}, Info: map[string]uint64{"discovery_files_probed": 4}, Truncated: map[string]uint64{"bytes": 65536}, State: state, Probes: 14, Binaries: 1}}
		},
		Outputs: func() []Output {
			return []Output{{Name: "otlp 127.0.0.1:4317", Written: 10, Dropped: 2, Bytes: 999, QueueDepth: 5}}
		},
	}
	h, err := Handler(src, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Serve("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr().String()

	code, text := scrape(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, text)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, text)
	}
	mod := map[string]string{"module": "openssl"}
	out := map[string]string{"output": "otlp 127.0.0.1:4317"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ecaphost_events_total", mod, 12},
		{"ecaphost_plugin_restarts_total", mod, 1},
		{"ecaphost_lost_events_total", map[string]string{"module": "openssl", "counter": "ringbuf_full"}, 3},
		{"ecaphost_module_state", map[string]string{"module": "openssl", "state": "running"}, 1},
		{"ecaphost_module_state", map[string]string{"module": "openssl", "state": "failed"}, 0},
		{"ecaphost_module_probes", mod, 14},
		{"ecaphost_module_info_total", map[string]string{"module": "openssl", "counter": "discovery_files_probed"}, 4},
		{"ecaphost_module_probed_binaries", mod, 1},
		{"ecaphost_truncated_total", map[string]string{"module": "openssl", "counter": "bytes"}, 65536},
		{"ecaphost_output_events_total", out, 10},
		{"ecaphost_output_dropped_events_total", out, 2},
		{"ecaphost_output_bytes_total", out, 999},
		{"ecaphost_output_queue_events", out, 5},
		{"ecaphost_build_info", map[string]string{"version": "v1.2.3"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if value(t, fams, "process_resident_memory_bytes", nil) <= 0 || fams["process_cpu_seconds_total"] == nil {
		t.Errorf("no process metrics")
	}

	if code, text := scrape(t, base+"/healthz"); code != http.StatusOK || text != "ok\n" {
		t.Errorf("/healthz while running: %d %q", code, text)
	}
	state = "restarting"
	if code, text := scrape(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(text, "openssl restarting") {
		t.Errorf("/healthz while restarting: %d %q", code, text)
	}
}
