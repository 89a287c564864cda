package gnutlsmod

import (
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestDiagnosticsOverGRPC: a wrong libgnutls path reaches the host as a
// diagnostic on the attribute, over the real transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, New())
	if h.Info.Name != Name || h.Info.Version != Version || len(h.Info.Schema.Attributes) != 1 {
		t.Fatalf("described as %+v", h.Info)
	}
	for _, tc := range []struct{ lib, want string }{
		{"/nope/libgnutls.so.30", "/nope/libgnutls.so.30 does not exist"},
		{"/bin/ls", "/bin/ls does not define gnutls_record_send"},
	} {
		ds := h.Configure(t, sdk.Settings{Config: sdk.Config{AttrLibgnutls: tc.lib}, CheckOnly: true})
		if !ds.HasErrors() || ds[0].Attribute != AttrLibgnutls || !strings.Contains(ds[0].Detail, tc.want) {
			t.Errorf("libgnutls %s: diagnostics %v, want one on %s saying %q", tc.lib, ds, AttrLibgnutls, tc.want)
		}
	}
}
