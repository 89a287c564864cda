package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
)

// fakeModule emits what the test feeds it, without a kernel.
type fakeModule struct {
	info  sdk.Info
	sink  sdk.Sink
	feed  chan func(sdk.Sink)
	stop  chan struct{}
	once  sync.Once
	inits int
	got   sdk.Settings
}

func newFake() *fakeModule {
	return &fakeModule{
		info: sdk.Info{Name: "fake", Version: "1.0.0", Schema: sdk.Schema{Attributes: []sdk.Attribute{
			{Name: "path", Type: sdk.TypeString, Default: "/bin/true"},
			{Name: "mode", Type: sdk.TypeString, OneOf: []string{"text", "keylog"}, Default: "text"},
			{Name: "size", Type: sdk.TypeNumber},
		}}},
		feed: make(chan func(sdk.Sink), 16),
		stop: make(chan struct{}),
	}
}

func (f *fakeModule) Info() sdk.Info { return f.info }
func (f *fakeModule) Init(_ context.Context, _ hclog.Logger, s sdk.Settings, sink sdk.Sink) error {
	f.inits++
	f.got = s
	if s.Config.String("path") == "/nonexistent" {
		return sdk.Diagnostics{sdk.Errorf("path", "File not found", "no file at %s", "/nonexistent")}
	}
	f.sink = sink
	return nil
}
func (f *fakeModule) Start() error { return nil }
func (f *fakeModule) Run() error {
	for {
		select {
		case fn := <-f.feed:
			fn(f.sink)
		case <-f.stop:
			return nil
		}
	}
}
func (f *fakeModule) Stop() error  { f.once.Do(func() { close(f.stop) }); return nil }
func (f *fakeModule) Close() error { return nil }

// run feeds fn to the module's event loop and waits until it ran.
func (f *fakeModule) run(fn func(sdk.Sink)) {
	done := make(chan struct{})
	f.feed <- func(s sdk.Sink) { fn(s); close(done) }
	<-done
}

func started(t *testing.T, tr pluginhost.Transport) (*fakeModule, *harness.Host) {
	t.Helper()
	return startedIn(t, tr, transportMode{})
}

// transportMode is one way events can travel to the host.
type transportMode struct {
	name   string
	v      uint32 // the only API version the module speaks; 0: all
	noData bool   // the host offers no data channel
}

// transportModes: messages per event (version 1), packed batches on the
// data channel (version 2), and packed batches on the gRPC stream
// (version 2 with a host that offers no data channel).
var transportModes = []transportMode{
	{name: "api1", v: 1},
	{name: "api2-data", v: 2},
	{name: "api2-grpc", v: 2, noData: true},
}

// startedIn is started with the module and host stub set up for mode.
func startedIn(t *testing.T, tr pluginhost.Transport, mode transportMode) (*fakeModule, *harness.Host) {
	t.Helper()
	f := newFake()
	if mode.v != 0 {
		f.info.APIVersions = []uint32{mode.v}
	}
	h := harness.NewWith(t, f, harness.Options{NoDataChannel: mode.noData})
	if ds := h.ConfigureTransport(t, sdk.Settings{}, tr); len(ds) > 0 {
		t.Fatalf("configure: %v", ds)
	}
	h.Start(t)
	return f, h
}

// forEachTransport runs fn as a subtest for each transport mode.
func forEachTransport(t *testing.T, fn func(t *testing.T, mode transportMode)) {
	for _, m := range transportModes {
		t.Run(m.name, func(t *testing.T) { fn(t, m) })
	}
}

func TestBatching(t *testing.T) { forEachTransport(t, testBatching) }

func testBatching(t *testing.T, mode transportMode) {
	const n = 10000
	f, h := startedIn(t, pluginhost.Transport{}, mode)
	if want := mode.v >= 2 && !mode.noData; h.Client.UsesDataChannel() != want {
		t.Errorf("data channel in use: %v, want %v", h.Client.UsesDataChannel(), want)
	}
	f.run(func(s sdk.Sink) {
		ev := sdk.Event{Kind: "command", PID: 42, Comm: "bash"}
		for i := range n {
			ev.Payload = fmt.Appendf(ev.Payload[:0], "event %d", i)
			s.Emit(&ev)
		}
	})
	h.Stop(t)
	evs := h.Events()
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if want := fmt.Sprintf("event %d", i); string(ev.Payload) != want || ev.Module != "fake" || ev.PID != 42 {
			t.Fatalf("event %d = %q module %q pid %d, want %q from fake pid 42", i, ev.Payload, ev.Module, ev.PID, want)
		}
	}
	// 10000 events at 1024 per batch: about 10 messages (+ the final one).
	if b := h.Batches(); b > n/500 {
		t.Errorf("%d events took %d stream messages; batching is not working", n, b)
	}
	t.Logf("%d events in %d stream messages", n, h.Batches())
}

func TestFlushByTimer(t *testing.T) {
	f, h := started(t, pluginhost.Transport{FlushInterval: 20 * time.Millisecond})
	f.run(func(s sdk.Sink) { s.Emit(&sdk.Event{Kind: "one", Payload: []byte("x")}) })
	// One event is far below every size limit: only the timer sends it.
	ev := h.WaitFor(t, 2*time.Second, func(ev *sdk.Event) bool { return ev.Kind == "one" })
	if string(ev.Payload) != "x" {
		t.Errorf("payload %q", ev.Payload)
	}
	h.Stop(t)
}

func TestLossCountersArrive(t *testing.T) {
	f, h := started(t, pluginhost.Transport{})
	f.run(func(s sdk.Sink) {
		s.SetCounter("ringbuf_reserve_failed", 41)
		s.Emit(&sdk.Event{Kind: "k"})
		s.SetCounter("ringbuf_reserve_failed", 42)
		s.SetCounter("perf_lost", 7)
	})
	h.Stop(t)
	got := h.Losses()
	if got["ringbuf_reserve_failed"] != 42 || got["perf_lost"] != 7 {
		t.Errorf("losses = %v, want ringbuf_reserve_failed=42 perf_lost=7", got)
	}
}

func TestIdleStreamSendsChangedCounters(t *testing.T) {
	f, h := started(t, pluginhost.Transport{})
	f.run(func(s sdk.Sink) { s.SetCounter("ringbuf_reserve_failed", 3) })
	deadline := time.Now().Add(5 * time.Second)
	for h.Losses()["ringbuf_reserve_failed"] != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("counter of an idle stream never arrived: %v", h.Losses())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Stop(t)
}

func TestRecordOverTransportLimitIsSplitAndJoined(t *testing.T) {
	cases := []struct {
		name string
		size int
		tr   pluginhost.Transport
	}{
		{"5MiB over gRPC's 4MiB message limit", 5 << 20, pluginhost.Transport{}},
		{"small fragments", 100_003, pluginhost.Transport{MaxFragmentBytes: 1000, MaxBatchBytes: 4096}},
		{"exactly one fragment", 256 << 10, pluginhost.Transport{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, mode transportMode) { testSplitAndJoined(t, tc.size, tc.tr, mode) })
		})
	}
}

func testSplitAndJoined(t *testing.T, size int, tr pluginhost.Transport, mode transportMode) {
	f, h := startedIn(t, tr, mode)
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	f.run(func(s sdk.Sink) {
		s.Emit(&sdk.Event{Kind: "before", Payload: []byte("a")})
		s.Emit(&sdk.Event{Kind: "big", PID: 9, Payload: big, Fields: []sdk.Field{{Key: "k", Value: "v"}}})
		s.Emit(&sdk.Event{Kind: "after", Payload: []byte("b")})
	})
	h.Stop(t)
	evs := h.Events()
	if len(evs) != 3 || evs[0].Kind != "before" || evs[1].Kind != "big" || evs[2].Kind != "after" {
		t.Fatalf("got %d events, want before, big, after", len(evs))
	}
	got := evs[1]
	if sha256.Sum256(got.Payload) != sha256.Sum256(big) {
		t.Fatalf("joined payload differs: %d bytes, want %d", len(got.Payload), len(big))
	}
	if v, _ := got.Field("k"); v != "v" || got.PID != 9 {
		t.Errorf("metadata lost in joining: %+v", got.Fields)
	}
	if _, truncated := got.Field("truncated"); truncated {
		t.Errorf("complete record marked truncated")
	}
}

// TestDataChannelMissingRefused: a host that asks for the data channel of
// a plugin that has none gets a clear refusal at Configure, not a stream
// that never delivers.
func TestDataChannelMissingRefused(t *testing.T) {
	h := harness.NewWith(t, newFake(), harness.Options{NoDataChannel: true})
	hostEnd, plugin, err := pluginhost.NewDataChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer hostEnd.Close()
	plugin.Close()
	h.Client.SetDataChannel(hostEnd)
	_, err = h.Client.Configure(context.Background(), sdk.Settings{APIVersion: 2}, pluginhost.Transport{})
	if err == nil || !strings.Contains(err.Error(), pluginhost.EnvDataFD) {
		t.Fatalf("configure = %v, want a refusal naming %s", err, pluginhost.EnvDataFD)
	}
}

func TestUnsupportedAPIVersionRefused(t *testing.T) {
	f := newFake()
	f.info.APIVersions = []uint32{98, 99}
	h := harness.New(t, f)
	_, err := pluginhost.Negotiate(sdk.APIVersions, h.Info.APIVersions)
	if !errors.Is(err, pluginhost.ErrNoCommonAPIVersion) {
		t.Fatalf("negotiate: err = %v, want ErrNoCommonAPIVersion", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "[98 99]") || !strings.Contains(msg, fmt.Sprint(sdk.APIVersions)) {
		t.Errorf("error %q does not name both version lists", msg)
	}
	// A host that forces a version the plugin does not list is refused by
	// the plugin too.
	_, err = h.Client.Configure(context.Background(), sdk.Settings{APIVersion: 1}, pluginhost.Transport{})
	if err == nil || !strings.Contains(err.Error(), "speaks [98 99]") {
		t.Errorf("configure with API version 1: err = %v, want a refusal naming [98 99]", err)
	}
	if f.inits != 0 {
		t.Errorf("module was initialised despite the version mismatch")
	}
}

func TestConfigureDiagnostics(t *testing.T) {
	cases := []struct {
		name     string
		config   sdk.Config
		wantAttr string
		wantText string
	}{
		{"unknown attribute", sdk.Config{"nope": "x"}, "nope", "no config attribute"},
		{"wrong type", sdk.Config{"size": "big"}, "size", "must be a number"},
		{"outside one_of", sdk.Config{"mode": "pcap"}, "mode", "one of text, keylog"},
		{"module refuses", sdk.Config{"path": "/nonexistent"}, "path", "no file at /nonexistent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := harness.New(t, newFake())
			ds := h.Configure(t, sdk.Settings{Config: tc.config})
			if !ds.HasErrors() || ds[0].Attribute != tc.wantAttr || !strings.Contains(ds[0].Detail, tc.wantText) {
				t.Errorf("diagnostics = %+v, want an error on %q containing %q", ds, tc.wantAttr, tc.wantText)
			}
		})
	}
}

func TestDefaultsAndCommonReachModule(t *testing.T) {
	f := newFake()
	h := harness.New(t, f)
	ds := h.Configure(t, sdk.Settings{Common: sdk.Common{PID: 7, UID: 1000, Comm: "curl", BufferKiB: 256}, Config: sdk.Config{"size": int64(3)}})
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	if f.got.Common != (sdk.Common{PID: 7, UID: 1000, Comm: "curl", BufferKiB: 256}) {
		t.Errorf("common = %+v", f.got.Common)
	}
	if f.got.Config.String("path") != "/bin/true" || f.got.Config.String("mode") != "text" || f.got.Config.Number("size") != 3 {
		t.Errorf("config = %v, want defaults filled and size 3", f.got.Config)
	}
}

func TestEventFieldsSurviveTransport(t *testing.T) { forEachTransport(t, testEventFieldsSurvive) }

func testEventFieldsSurvive(t *testing.T, mode transportMode) {
	f, h := startedIn(t, pluginhost.Transport{}, mode)
	want := sdk.Event{
		Time: time.Unix(1700000000, 123456789), Kind: "tls_data", PID: 1, TID: 2, UID: 3, Comm: "curl",
		Payload: []byte("GET / HTTP/1.1\r\n"), Route: sdk.RouteStream,
		Fields: []sdk.Field{{Key: "lib", Value: "openssl"}},
	}
	want.Conn.ID = 77
	want.Conn.Direction = sdk.DirectionEgress
	want.Conn.Local = netip.MustParseAddrPort("10.0.0.1:443")
	want.Conn.Remote = netip.MustParseAddrPort("[2001:db8::1]:5555")
	f.run(func(s sdk.Sink) { s.Emit(&want) })
	h.Stop(t)
	evs := h.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	got := evs[0]
	if !got.Time.Equal(want.Time) || got.Kind != want.Kind || got.PID != 1 || got.TID != 2 || got.UID != 3 ||
		got.Comm != "curl" || !bytes.Equal(got.Payload, want.Payload) || got.Route != sdk.RouteStream ||
		got.Conn != want.Conn || len(got.Fields) != 1 || got.Fields[0] != want.Fields[0] {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// slowStart is fakeModule with a Start that waits for release.
type slowStart struct {
	*fakeModule
	release chan struct{}
}

func (m slowStart) Start() error { <-m.release; return nil }

// TestStartDeadlineKeepsItsCode: a Start that outlives its deadline fails
// with an error that still says DeadlineExceeded to status.Code (the host
// tells a timeout from a refusal by it), in words without gRPC's prefix.
func TestStartDeadlineKeepsItsCode(t *testing.T) {
	m := slowStart{newFake(), make(chan struct{})}
	defer close(m.release)
	h := harness.New(t, m)
	if ds := h.Configure(t, sdk.Settings{}); ds.HasErrors() {
		t.Fatal(ds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := h.Client.Start(ctx)
	if status.Code(err) != codes.DeadlineExceeded || strings.Contains(fmt.Sprint(err), "rpc error") {
		t.Errorf("Start = %v (code %v), want DeadlineExceeded without gRPC's prefix", err, status.Code(err))
	}
}

// listingModule is fakeModule with the optional ProbeLister capability.
type listingModule struct{ *fakeModule }

func (listingModule) Probes() []sdk.ProbeInfo {
	return []sdk.ProbeInfo{{Program: "uprobe_x", Kind: "uprobe", Target: "x", Binary: "/bin/x"}}
}

func TestOptionalCapability(t *testing.T) {
	cases := []struct {
		name   string
		module sdk.Module
		absent bool
	}{
		{"module with the capability", listingModule{newFake()}, false},
		{"module without it still runs", newFake(), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := harness.New(t, tc.module)
			if ds := h.Configure(t, sdk.Settings{}); len(ds) > 0 {
				t.Fatal(ds)
			}
			h.Start(t)
			ps, err := h.Client.Probes(context.Background())
			if tc.absent {
				if !errors.Is(err, pluginhost.ErrCapabilityAbsent) {
					t.Errorf("Probes = %v, %v; want ErrCapabilityAbsent", ps, err)
				}
			} else if err != nil || len(ps) != 1 || ps[0].Target != "x" || ps[0].Binary != "/bin/x" {
				t.Errorf("Probes = %+v, %v", ps, err)
			}
			h.Stop(t)
		})
	}
}
