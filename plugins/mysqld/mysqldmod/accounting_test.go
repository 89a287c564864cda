package mysqldmod

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestEveryStatementAccounted fills a one-page ring buffer before anything
// reads it: each statement is then either an event or counted in
// statements_lost, and an event whose text lost a chunk says so.
func TestEveryStatementAccounted(t *testing.T) {
	s := startServer(t)
	sink := &harness.Sink{}
	m := ebpfbase.New(New())
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testLogWriter{t}})
	settings := sdk.Settings{Common: sdk.Common{PID: uint32(s.pid()), BufferKiB: 4}, Config: sdk.Config{AttrBinary: debianServer}}
	if err := m.Init(t.Context(), logger, settings, sink); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	defer func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	const n = 100
	marker := randomMarker(t)
	var b strings.Builder
	for i := range n {
		b.WriteString("SELECT '" + marker + "-" + strconv.Itoa(i) + "';\n")
	}
	s.mustQuery(t, b.String())

	errc := make(chan error, 1)
	go func() { errc <- m.Run() }()
	time.Sleep(500 * time.Millisecond) // a few reads and counter reports
	_ = m.Stop()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}

	lostTotal, _ := sink.Counter(CounterStatementsLost)
	reserveFailed, _ := sink.Counter(ebpfbase.CounterReserveFailed)
	events := sink.Events(0)
	lost := int(lostTotal)
	whole, cut := 0, 0
	for _, ev := range events {
		if ev.Kind != KindQuery {
			continue
		}
		p := string(ev.Payload)
		switch {
		case field(ev, FieldTruncated) == "true":
			cut++
		case strings.HasPrefix(p, "SELECT '"+marker+"-") && strings.HasSuffix(p, "'"):
			whole++
		default:
			t.Errorf("query event %.80q is neither a statement sent nor marked truncated", p)
		}
	}
	t.Logf("ring of 4 KiB: %d statements sent; %d query events whole, %d marked truncated, %d events in all; %d counted in %s, %d records in %s",
		n, whole, cut, len(events), lost, CounterStatementsLost, reserveFailed, ebpfbase.CounterReserveFailed)
	if lost == 0 {
		t.Fatalf("nothing counted in %s although the ring was full", CounterStatementsLost)
	}
	// The client's quit is dispatched too, and may be among the lost.
	if q := whole + cut + lost; q < n || q > n+1 {
		t.Errorf("%d query events + %d counted lost = %d, want the %d statements sent (+ the client's quit)", whole+cut, lost, q, n)
	}
	if all := len(events) + lost; all < n || all > n+1 {
		t.Errorf("%d events + %d counted lost = %d, want %d (+ the client's quit)", len(events), lost, all, n)
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestLongPreparedStatement prepares a statement over 64 KiB through the
// binary protocol: the prepare event and the execute event (whose text
// comes from the prepared statement, sent in chunks by a bpf_loop) carry
// every byte.
func TestLongPreparedStatement(t *testing.T) {
	s := startServer(t)
	h := captureServer(t, s)
	db := openDB(t, s)
	ctx := context.Background()
	marker := randomMarker(t)
	text := "SELECT ? + LENGTH('" + marker + strings.Repeat("0123456789", 10<<10) + "')"
	stmt, err := db.PrepareContext(ctx, text)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var got int
	if err := stmt.QueryRowContext(ctx, 1).Scan(&got); err != nil || got != 1+len(marker)+100<<10 {
		t.Fatalf("executing: %d, %v", got, err)
	}
	for _, kind := range []string{KindStmtPrepare, KindStmtExecute} {
		ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
			return ev.Kind == kind && strings.Contains(string(ev.Payload[:min(len(ev.Payload), 64)]), marker)
		})
		if string(ev.Payload) != text {
			t.Errorf("%s carries %d bytes, want the statement's %d (first difference at %d)", kind, len(ev.Payload), len(text), firstDiff(ev.Payload, []byte(text)))
		}
		if v, ok := ev.Field(FieldTruncated); ok {
			t.Errorf("%s marked truncated=%s", kind, v)
		}
	}
}
