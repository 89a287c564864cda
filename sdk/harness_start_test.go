package sdk_test

import (
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestHarnessStart: harness.Start runs the module, and stops it when the
// test ends unless the test stopped it.
func TestHarnessStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stopSelf bool
	}{
		{"stopped at cleanup", false},
		{"stopped by the test", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			t.Run("capture", func(t *testing.T) {
				h := harness.Start(t, f, sdk.Settings{})
				f.run(func(s sdk.Sink) { s.Emit(&sdk.Event{Kind: "one"}) })
				h.WaitFor(t, 5*time.Second, func(ev *sdk.Event) bool { return ev.Kind == "one" })
				if tc.stopSelf {
					h.Stop(t)
				}
			})
			select {
			case <-f.stop:
			case <-time.After(5 * time.Second):
				t.Fatal("the module still runs after its test ended")
			}
		})
	}
}

// TestHarnessWantConfigError: the module's diagnostic on an attribute
// satisfies WantConfigError.
func TestHarnessWantConfigError(t *testing.T) {
	f := newFake()
	h := harness.New(t, f)
	ds := h.WantConfigError(t, sdk.Config{"path": "/nonexistent"}, "path", "no file at /nonexistent")
	if len(ds) != 1 || !f.got.CheckOnly {
		t.Errorf("diagnostics %v, settings %+v", ds, f.got)
	}
}
