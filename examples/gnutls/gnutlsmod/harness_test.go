package gnutlsmod

import (
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestDiagnosticsOverGRPC: a wrong libgnutls path reaches the host as a
// diagnostic on the attribute, over the real transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || h.Info.Version != Version || len(h.Info.Schema.Attributes) != 1 {
		t.Fatalf("described as %+v", h.Info)
	}
	h.WantConfigError(t, sdk.Config{AttrLibgnutls: "/nope/libgnutls.so.30"}, AttrLibgnutls, "/nope/libgnutls.so.30 does not exist")
	h.WantConfigError(t, sdk.Config{AttrLibgnutls: "/bin/ls"}, AttrLibgnutls, "/bin/ls does not define gnutls_record_send")
}
