package opensslmod

import (
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestDiagnosticsOverGRPC: a wrong libssl path or a program without
// OpenSSL reaches the host as a diagnostic on the attribute, over the real
// transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 4+len(keyAttributes) {
		t.Fatalf("described as %+v", h.Info)
	}
	for _, tc := range []struct {
		config     sdk.Config
		attr, want string
	}{
		{sdk.Config{AttrLibssl: "/nope/libssl.so.3"}, AttrLibssl, "/nope/libssl.so.3 does not exist"},
		{sdk.Config{AttrLibssl: "/bin/ls"}, AttrLibssl, "/bin/ls does not define SSL_write"},
		{sdk.Config{AttrBinary: "/bin/ls"}, AttrBinary, "/bin/ls does not define SSL_write"},
		{sdk.Config{tlsrecord.AttrMaxData: int64(-1)}, tlsrecord.AttrMaxData, "max_data is -1: it must be a number of bytes"},
	} {
		ds := h.Configure(t, sdk.Settings{Config: tc.config, CheckOnly: true})
		if !ds.HasErrors() || ds[0].Attribute != tc.attr || !strings.Contains(ds[0].Detail, tc.want) {
			t.Errorf("config %v: diagnostics %v, want one on %s saying %q", tc.config, ds, tc.attr, tc.want)
		}
	}
}
