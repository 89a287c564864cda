package gnutlsmod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestDiagnosticsOverGRPC: a wrong libgnutls path, and a record_file that
// is a symbolic link, reach the host as diagnostics on the attribute, over
// the real transport, at validate time.
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || h.Info.Version != Version || len(h.Info.Schema.Attributes) != 3 {
		t.Fatalf("described as %+v", h.Info)
	}
	h.WantConfigError(t, sdk.Config{AttrLibgnutls: "/nope/libgnutls.so.30"}, AttrLibgnutls, "/nope/libgnutls.so.30 does not exist")
	h.WantConfigError(t, sdk.Config{AttrLibgnutls: "/bin/ls"}, AttrLibgnutls, "/bin/ls does not define gnutls_record_send")
	h.WantConfigError(t, sdk.Config{tlsrecord.AttrMaxData: int64(-4096)}, tlsrecord.AttrMaxData, "max_data is -4096")
	link := filepath.Join(t.TempDir(), "records.bin")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	h.WantConfigError(t, sdk.Config{AttrRecordFile: link}, AttrRecordFile, "refusing to write "+link+": it is a symbolic link")
}
