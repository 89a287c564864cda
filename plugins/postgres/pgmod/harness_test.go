package pgmod

import (
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestOverGRPC drives the module as the host does: diagnostics for a
// binary that is not a server and for an unknown release, then a failing
// statement whose event and counters cross the transport.
func TestOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 2 {
		t.Fatalf("described as %+v", h.Info)
	}
	h.WantConfigError(t, sdk.Config{AttrBinary: "/bin/sh"}, AttrBinary, "is it the PostgreSQL server binary")
	h.WantConfigError(t, sdk.Config{AttrServerVersion: "8"}, AttrServerVersion, "this module knows 12 to 17")

	c := requireCluster(t)
	h = harness.Start(t, ebpfbase.New(New()), sdk.Settings{Config: sdk.Config{AttrBinary: c.postgres()}})
	mk := randomMarker(t)
	c.psql(t, "SELECT no_such_column_"+mk+" FROM pg_class")
	ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return strings.Contains(string(ev.Payload), mk) })
	if ev.Module != Name || ev.Kind != KindQuery || field(ev, FieldSQLState) != "42703" || !strings.Contains(field(ev, FieldError), mk) {
		t.Errorf("event %s, want a query failing with 42703", harness.Describe([]*sdk.Event{ev}))
	}
	h.Stop(t)
	for _, ctr := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors} {
		if _, ok := h.Losses()[ctr]; !ok {
			t.Errorf("counter %s did not reach the host: %v", ctr, h.Losses())
		}
	}
}
