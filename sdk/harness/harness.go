package harness

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
)

// Host is a host stub driving one module. Its methods fail the test on
// transport errors; the collected events and counters are safe to read
// from the test goroutine while the stream runs.
type Host struct {
	Client *pluginhost.Client
	Info   sdk.Info

	mu      sync.Mutex
	events  []*sdk.Event
	batches int
	losses  map[string]uint64
	changed chan struct{}

	streamErr  error
	streamDone chan struct{}
	cancel     context.CancelFunc
	stopped    bool
}

// Options tune NewWith.
type Options struct {
	// NoDataChannel: offer the module no data channel, as a host without
	// one would; its batches then travel on the gRPC stream.
	NoDataChannel bool
}

// New serves m in-process and connects a client to it over gRPC, with a
// data channel as the host gives a plugin. The connections are closed when
// the test ends.
func New(t testing.TB, m sdk.Module) *Host {
	t.Helper()
	return NewWith(t, m, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, m sdk.Module, o Options) *Host {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "harness", Level: hclog.Warn, Output: testWriter{t}})
	var hostEnd, pluginEnd net.Conn
	if !o.NoDataChannel {
		var f *os.File
		var err error
		hostEnd, f, err = pluginhost.NewDataChannel()
		if err != nil {
			t.Fatal(err)
		}
		pluginEnd, err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hostEnd.Close(); pluginEnd.Close() })
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, pluginhost.ServerFor(m, logger, pluginEnd))
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(pluginhost.DispenseName)
	if err != nil {
		t.Fatalf("dispensing the module: %v", err)
	}
	h := &Host{Client: raw.(*pluginhost.Client), losses: map[string]uint64{}, changed: make(chan struct{}, 1)}
	if hostEnd != nil {
		h.Client.SetDataChannel(hostEnd)
	}
	info, err := h.Client.Describe(context.Background())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	h.Info = info
	return h
}

// Start is New, Configure with s (failing the test on error diagnostics)
// and Start: it returns a Host whose module runs with its event stream
// open. When the test ends, the module is stopped as by Stop unless the
// test stopped it or its stream failed.
func Start(t testing.TB, m sdk.Module, s sdk.Settings) *Host {
	t.Helper()
	h := New(t, m)
	if ds := h.Configure(t, s); ds.HasErrors() {
		t.Fatalf("configuring module %s: %v", h.Info.Name, ds)
	}
	h.Start(t)
	t.Cleanup(func() {
		h.mu.Lock()
		stopped := h.stopped
		h.mu.Unlock()
		if !stopped && h.StreamErr() == nil {
			h.Stop(t)
		}
	})
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// Configure negotiates the API version like the host, sends s and returns
// the module's diagnostics. A zero s.APIVersion is filled by negotiation.
func (h *Host) Configure(t testing.TB, s sdk.Settings) sdk.Diagnostics {
	t.Helper()
	return h.ConfigureTransport(t, s, pluginhost.Transport{})
}

// ConfigureTransport is Configure with explicit batching settings.
func (h *Host) ConfigureTransport(t testing.TB, s sdk.Settings, tr pluginhost.Transport) sdk.Diagnostics {
	t.Helper()
	if s.APIVersion == 0 {
		v, err := pluginhost.Negotiate(sdk.APIVersions, h.Info.APIVersions)
		if err != nil {
			t.Fatalf("%v", err)
		}
		s.APIVersion = v
	}
	ds, err := h.Client.Configure(context.Background(), s, tr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return ds
}

// WantConfigError has the module check cfg (CheckOnly, as ecaphost
// validate does) and fails the test unless the first diagnostic is an
// error on attribute attr whose detail contains detail. It returns the
// diagnostics.
func (h *Host) WantConfigError(t testing.TB, cfg sdk.Config, attr, detail string) sdk.Diagnostics {
	t.Helper()
	ds := h.Configure(t, sdk.Settings{Config: cfg, CheckOnly: true})
	if len(ds) == 0 || ds[0].Severity != sdk.SeverityError || ds[0].Attribute != attr || !strings.Contains(ds[0].Detail, detail) {
		t.Errorf("config %v: diagnostics %v, want first an error on %s saying %q", cfg, ds, attr, detail)
	}
	return ds
}

// Start starts the module and opens the event stream.
func (h *Host) Start(t testing.TB) {
	t.Helper()
	if err := h.TryStart(); err != nil {
		t.Fatalf("%v", err)
	}
}

// TryStart is Start returning the module's start error.
func (h *Host) TryStart() error {
	if err := h.Client.Start(context.Background()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.streamDone = make(chan struct{})
	go func() {
		defer close(h.streamDone)
		err := h.Client.Events(ctx, func(b *pluginhost.Batch) error {
			h.mu.Lock()
			h.batches++
			for i := range b.Events {
				h.events = append(h.events, b.Events[i].Clone())
			}
			for _, c := range b.Losses {
				h.losses[c.Name] = c.Value
			}
			h.mu.Unlock()
			select {
			case h.changed <- struct{}{}:
			default:
			}
			return nil
		})
		h.mu.Lock()
		h.streamErr = err
		h.mu.Unlock()
	}()
	return nil
}

// Stop stops the module and waits for the stream's last batch.
func (h *Host) Stop(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	if err := h.Client.Stop(context.Background()); err != nil {
		t.Errorf("%v", err)
	}
	if h.streamDone != nil {
		select {
		case <-h.streamDone:
		case <-time.After(15 * time.Second):
			t.Errorf("the event stream did not end after stop")
		}
		h.cancel()
	}
	if err := h.StreamErr(); err != nil {
		t.Errorf("event stream: %v", err)
	}
}

// StreamErr is the error the event stream ended with, if it ended.
func (h *Host) StreamErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streamErr
}

// Events returns the events received so far.
func (h *Host) Events() []*sdk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*sdk.Event(nil), h.events...)
}

// Batches returns how many stream messages arrived.
func (h *Host) Batches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.batches
}

// Losses returns the latest loss counters.
func (h *Host) Losses() map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]uint64, len(h.losses))
	for k, v := range h.losses {
		out[k] = v
	}
	return out
}

// WaitFor waits until an event matching match arrives and returns it, or
// fails the test after timeout.
func (h *Host) WaitFor(t testing.TB, timeout time.Duration, match func(*sdk.Event) bool) *sdk.Event {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		evs := h.Events()
		for _, ev := range evs[seen:] {
			if match(ev) {
				return ev
			}
		}
		seen = len(evs)
		select {
		case <-h.changed:
		case <-deadline:
			t.Fatalf("no matching event within %v (%d events seen)", timeout, seen)
			return nil
		}
	}
}
