package zshmod

import (
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/shellrec"
)

// TestOverGRPC drives the module as the host does, through the SDK's
// in-process gRPC harness: a diagnostic for a bad config, then a capture
// whose events and loss counters cross the transport.
func TestOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 1 {
		t.Fatalf("described as %+v", h.Info)
	}
	h.WantConfigError(t, sdk.Config{AttrZshBinary: "/bin/bash"}, AttrZshBinary, "is it zsh?")

	harness.RequirePrivileges(t, "/bin/zsh")
	sh := startShell(t)
	h = harness.Start(t, ebpfbase.New(New()), sdk.Settings{Config: sdk.Config{AttrZshBinary: "/bin/zsh"}})
	marker := harness.Marker(t)
	line := "echo " + marker + "; false"
	sh.Type(t, line)
	ev := h.WaitFor(t, 5*time.Second, func(ev *sdk.Event) bool {
		return int(ev.PID) == sh.PID() && ev.Kind == shellrec.KindCommandExit && string(ev.Payload) == line
	})
	if st, _ := ev.Field(shellrec.FieldStatus); st != "1" || ev.Module != Name {
		t.Errorf("exit event %+v, want status 1 from module %s", ev, Name)
	}
	h.Stop(t)
	losses := h.Losses()
	for _, c := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors} {
		if _, ok := losses[c]; !ok {
			t.Errorf("counter %s did not reach the host: %v", c, losses)
		}
	}
}
