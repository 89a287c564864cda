package gotlsmod

import (
	"os/exec"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// TestDiagnosticsOverGRPC: bad input reaches the host as diagnostics on
// the attribute, over the real transport, at validate time (nothing
// loaded).
func TestDiagnosticsOverGRPC(t *testing.T) {
	h := harness.New(t, ebpfbase.New(New()))
	if h.Info.Name != Name || len(h.Info.Schema.Attributes) != 4 {
		t.Fatalf("described as %+v", h.Info)
	}
	peer := build(t, localGo, "gopeer", "stripped")
	unknown := withVersion(t, peer, "go1.99.8")
	h.WantConfigError(t, sdk.Config{AttrBinary: "/nope/server"}, AttrBinary, "/nope/server does not exist")
	h.WantConfigError(t, sdk.Config{AttrBinary: "/bin/ls"}, AttrBinary, "/bin/ls has no Go build information")
	h.WantConfigError(t, sdk.Config{AttrBinary: build(t, localGo, "notls", "stripped")}, AttrBinary, "has no crypto/tls.(*Conn).Write and crypto/tls.(*Conn).Read in .gopclntab")
	h.WantConfigError(t, sdk.Config{AttrBinary: withVersion(t, peer, "go1.16.8")}, AttrBinary, "built by go1.16.8, before Go 1.17's register ABI")
	h.WantConfigError(t, sdk.Config{AttrBinary: unknown}, AttrBinary, `built by go1.99.8, a release whose structure offsets the module does not know (it knows go1.17 to go1.27); set go_version = "1.27"`)
	h.WantConfigError(t, sdk.Config{AttrBinary: peer, AttrGoVersion: "1.99"}, AttrGoVersion, `"1.99" is not a Go release the module knows`)
	h.WantConfigError(t, sdk.Config{AttrBinary: peer, AttrMode: ModeKeylog}, AttrKeylogFile, `mode "keylog" needs keylog_file`)
	h.WantConfigError(t, sdk.Config{AttrBinary: peer, AttrKeylogFile: "/tmp/k.log"}, AttrKeylogFile, `applies to mode "keylog"`)
	h.WantConfigError(t, sdk.Config{AttrBinary: peer, AttrMode: ModeKeylog, AttrKeylogFile: "/nope/k.log"}, AttrKeylogFile, "the directory of /nope/k.log")
	for _, cfg := range []sdk.Config{
		{AttrBinary: peer},
		{AttrBinary: unknown, AttrGoVersion: "1.27"},
		{AttrBinary: peer, AttrMode: ModeKeylog, AttrKeylogFile: t.TempDir() + "/k.log"},
	} {
		if ds := harness.New(t, ebpfbase.New(New())).Configure(t, sdk.Settings{Config: cfg, CheckOnly: true}); ds.HasErrors() {
			t.Errorf("config %v: %v", cfg, ds)
		}
	}
}

// TestDiagnosticPID: a pid filter naming a process that is not a Go
// program with crypto/tls is refused.
func TestDiagnosticPID(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	h := harness.New(t, ebpfbase.New(New()))
	ds := h.Configure(t, sdk.Settings{Common: sdk.Common{PID: uint32(cmd.Process.Pid)}, CheckOnly: true})
	if len(ds) == 0 || ds[0].Summary != "Not a Go executable" {
		t.Errorf("diagnostics %v", ds)
	}
}
