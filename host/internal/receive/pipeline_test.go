package receive

import (
	"slices"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
)

// TestBehind: the module is behind at three quarters of what the data
// channel holds, or at three batches when its size is unknown.
func TestBehind(t *testing.T) {
	for _, tc := range []struct {
		backlog, limit int
		want           bool
	}{
		{0, 8 << 20, false},
		{3 << 20, 8 << 20, false}, // three batches of an 8 MiB channel: not yet
		{6<<20 - 1, 8 << 20, false},
		{6 << 20, 8 << 20, true},
		{300 << 10, 400 << 10, true}, // a small channel fills sooner
		{3<<20 - 1, 0, false},
		{3 << 20, 0, true},
	} {
		if got := behind(&pluginhost.Batch{Backlog: tc.backlog, BacklogLimit: tc.limit}); got != tc.want {
			t.Errorf("behind(backlog %d, limit %d) = %v, want %v", tc.backlog, tc.limit, got, tc.want)
		}
	}
}

// sink keeps copies of what it is given and releases owned batches at
// once, as outputs done with them would.
type sink struct{ events []sdk.Event }

func (s *sink) Write(evs []sdk.Event) error {
	for i := range evs {
		s.events = append(s.events, *evs[i].Clone())
	}
	return nil
}

func (s *sink) WriteOwned(evs []sdk.Event, release func()) error {
	err := s.Write(evs)
	release()
	return err
}

var t0 = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

func newPipeline(s *sink) *Pipeline { return New("m", s, nil, hclog.NewNullLogger()) }

// TestDeliverCopies: the events of a batch are valid only during Deliver
// (the client reuses them); what reaches the sink are copies.
func TestDeliverCopies(t *testing.T) {
	var s sink
	p := newPipeline(&s)
	payload := []byte("first")
	fields := []sdk.Field{{Key: "k", Value: "v"}}
	b := &pluginhost.Batch{Events: []sdk.Event{{Time: t0, Module: "m", Kind: "line", Payload: payload, Fields: fields}}}
	if err := p.Deliver(b); err != nil {
		t.Fatal(err)
	}
	copy(payload, "XXXXX")
	fields[0].Value = "changed"
	b.Events[0] = sdk.Event{Time: t0.Add(time.Second), Module: "m", Kind: "line", Payload: []byte("second")}
	if err := p.Deliver(b); err != nil {
		t.Fatal(err)
	}
	if len(s.events) != 2 {
		t.Fatalf("sink got %d events, want 2", len(s.events))
	}
	if got := string(s.events[0].Payload); got != "first" {
		t.Errorf("first payload = %q, want %q", got, "first")
	}
	if len(s.events[0].Fields) != 1 || s.events[0].Fields[0].Value != "v" {
		t.Errorf("first fields = %v, want [k=v]", s.events[0].Fields)
	}
	if got := string(s.events[1].Payload); got != "second" {
		t.Errorf("second payload = %q, want %q", got, "second")
	}
}

// TestCountsAcrossProcesses: a plugin process reports its loss counters
// as totals; those of a process that ended are kept and added to the next
// one's, and End gives the time of the ended process's last event.
func TestCountsAcrossProcesses(t *testing.T) {
	var s sink
	p := newPipeline(&s)
	ev := func(d time.Duration) sdk.Event { return sdk.Event{Time: t0.Add(d), Module: "m", Kind: "line"} }
	_ = p.Deliver(&pluginhost.Batch{Events: []sdk.Event{ev(0)}, Losses: []pluginhost.Counter{{Name: "lost", Value: 3}}})
	_ = p.Deliver(&pluginhost.Batch{Events: []sdk.Event{ev(time.Second), ev(2 * time.Second)},
		Losses: []pluginhost.Counter{{Name: "lost", Value: 5}, {Name: sdk.InfoCounterPrefix + "probed", Value: 9}}})
	if last := p.End(); !last.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("End = %v, want the last event's time %v", last, t0.Add(2*time.Second))
	}
	_ = p.Deliver(&pluginhost.Batch{Losses: []pluginhost.Counter{{Name: "lost", Value: 2}}})
	st := p.Stats()
	if st.Events != 3 {
		t.Errorf("Events = %d, want 3", st.Events)
	}
	if st.Lost() != 7 {
		t.Errorf("Lost = %d, want 7 (5 from the first process, 2 from the second; info counters are not losses)", st.Lost())
	}
	if len(st.Losses) != 2 || st.Losses[0].Name != sdk.InfoCounterPrefix+"probed" || st.Losses[1].Name != "lost" {
		t.Errorf("Losses = %v, want info_probed and lost, sorted", st.Losses)
	}
	if last := p.End(); !last.IsZero() {
		t.Errorf("End of a process that sent no event = %v, want zero", last)
	}
}

// TestStreamEventsDecoded: events marked RouteStream go through the HTTP
// decoder; End writes what it still holds.
func TestStreamEventsDecoded(t *testing.T) {
	var s sink
	p := newPipeline(&s)
	rec := func(dir sdk.Direction, text string) sdk.Event {
		return sdk.Event{Time: t0, Module: "m", Kind: "tls_data", PID: 7, Payload: []byte(text),
			Conn: sdk.Connection{ID: 1, Direction: dir}, Route: sdk.RouteStream}
	}
	_ = p.Deliver(&pluginhost.Batch{Events: []sdk.Event{
		rec(sdk.DirectionEgress, "GET /marker HTTP/1.1\r\nHost: x\r\n\r\n"),
		{Time: t0, Module: "m", Kind: "line", Payload: []byte("not a stream")},
		rec(sdk.DirectionIngress, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), // the body never ends: End emits it
	}})
	p.End()
	var kinds []string
	for _, ev := range s.events {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{"http_request", "line", "http_response"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
	if st := p.Stats().Stream; st.HTTP1Messages != 2 {
		t.Errorf("HTTP/1 messages = %d, want 2", st.HTTP1Messages)
	}
}

// TestStatsLostAndTruncated: the counters of data captured in part and of
// work done are not events lost.
func TestStatsLostAndTruncated(t *testing.T) {
	st := Stats{Losses: []pluginhost.Counter{
		{Name: "ringbuf_reserve_failed", Value: 3},
		{Name: "info_discovery_files_probed", Value: 5},
		{Name: "truncated_records", Value: 7},
		{Name: "truncated_bytes", Value: 70000},
		{Name: "tls_calls_too_deep", Value: 1},
	}}
	if got := st.Lost(); got != 4 {
		t.Errorf("Lost = %d, want 4", got)
	}
	if got := st.Truncated(); got != 7 {
		t.Errorf("Truncated = %d, want 7", got)
	}
}

// TestPipelineBehind: what the governor is told. A module whose data
// channel backs up is behind, unless its kernel side cut records for load
// within cutHold (the probes shed the load, cheaper than a host at normal
// priority); one that lost records since the last batch is behind
// whatever its backlog.
func TestPipelineBehind(t *testing.T) {
	const limit = 8 << 20
	full, empty := limit/4*3, 0
	batch := func(backlog int, counters ...pluginhost.Counter) *pluginhost.Batch {
		return &pluginhost.Batch{Backlog: backlog, BacklogLimit: limit, Losses: counters}
	}
	cut := func(n uint64) pluginhost.Counter { return pluginhost.Counter{Name: CounterOverloadRecords, Value: n} }
	lost := func(n uint64) pluginhost.Counter { return pluginhost.Counter{Name: "ringbuf_reserve_failed", Value: n} }
	info := func(n uint64) pluginhost.Counter { return pluginhost.Counter{Name: "info_host_boosts", Value: n} }
	p := newPipeline(&sink{})
	now := t0
	for _, step := range []struct {
		name  string
		after time.Duration
		b     *pluginhost.Batch
		want  bool
	}{
		{"keeping up", 0, batch(empty, cut(0), lost(0)), false},
		{"backlog", 0, batch(full, cut(0), lost(0)), true},
		{"backlog while the probes cut", 0, batch(full, cut(5), lost(0)), false},
		{"still within cutHold", cutHold - time.Millisecond, batch(full, cut(5), lost(0), info(3)), false},
		{"cutHold after the last cut", time.Millisecond, batch(full, cut(5), lost(0)), true},
		{"cutting again", 0, batch(full, cut(9), lost(0)), false},
		{"records lost while cutting", 0, batch(full, cut(12), lost(1)), true},
		{"lost even without backlog", 0, batch(empty, cut(12), lost(2)), true},
		{"no more lost", 0, batch(empty, cut(12), lost(2)), false},
		{"a new plugin process's counters (from 0) differ: taken as a cut", cutHold, batch(full, cut(0), lost(0)), false},
	} {
		now = now.Add(step.after)
		if got := p.behind(step.b, now); got != step.want {
			t.Errorf("%s: behind = %v, want %v", step.name, got, step.want)
		}
	}
}
