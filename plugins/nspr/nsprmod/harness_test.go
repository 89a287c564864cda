package nsprmod

import (
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestDiagnosticsOverGRPC: a wrong nspr_lib reaches the host as a
// diagnostic on the attribute, over the real transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 3 {
		t.Fatalf("described as %+v", h.Info)
	}
	h.WantConfigError(t, sdk.Config{AttrNSPRLib: "/nope/libnspr4.so"}, AttrNSPRLib, "/nope/libnspr4.so does not exist")
	h.WantConfigError(t, sdk.Config{AttrNSPRLib: "/bin/ls"}, AttrNSPRLib, "/bin/ls does not define PR_Write")
	h.WantConfigError(t, sdk.Config{tlsrecord.AttrMaxData: int64(32 << 20)}, tlsrecord.AttrMaxData, "the kernel copies at most 16777216 bytes")
}
