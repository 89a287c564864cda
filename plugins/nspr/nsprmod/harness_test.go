package nsprmod

import (
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestDiagnosticsOverGRPC: a wrong nspr_lib reaches the host as a
// diagnostic on the attribute, over the real transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, New())
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 2 {
		t.Fatalf("described as %+v", h.Info)
	}
	for _, tc := range []struct {
		config sdk.Config
		want   string
	}{
		{sdk.Config{AttrNSPRLib: "/nope/libnspr4.so"}, "/nope/libnspr4.so does not exist"},
		{sdk.Config{AttrNSPRLib: "/bin/ls"}, "/bin/ls does not define PR_Write"},
	} {
		ds := h.Configure(t, sdk.Settings{Config: tc.config, CheckOnly: true})
		if !ds.HasErrors() || ds[0].Attribute != AttrNSPRLib || !strings.Contains(ds[0].Detail, tc.want) {
			t.Errorf("config %v: diagnostics %v, want one on %s saying %q", tc.config, ds, AttrNSPRLib, tc.want)
		}
	}
}
