package gnutlsmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// systemLibgnutls is the libgnutls the tests expect gnutls-cli to use.
const systemLibgnutls = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"

// requireLibgnutls skips (or fails under ECAPHOST_E2E=1) without the
// system libgnutls the Init tests point at.
func requireLibgnutls(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemLibgnutls); err != nil {
		harness.SkipOrFail(t, "needs %s (apt-get install gnutls-bin)", systemLibgnutls)
	}
}

func TestInfo(t *testing.T) {
	m := New()
	info := m.Info()
	if info.Name != Name || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
	if a, ok := info.Schema.Lookup(AttrLibgnutls); !ok || a.Type != sdk.TypeString || a.Default != "" || a.Description == "" {
		t.Errorf("attribute %s: %+v", AttrLibgnutls, a)
	}
}

func TestInit(t *testing.T) {
	requireLibgnutls(t)
	dir := t.TempDir()
	notELF := filepath.Join(dir, "libgnutls.so.30")
	if err := os.WriteFile(notELF, []byte("not a library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		config      sdk.Config
		common      sdk.Common
		wantDetail  string   // "": Init succeeds
		wantTargets []string // compared with os.SameFile; nil: any non-empty
	}{
		{name: "defaults find the system libgnutls"},
		{name: "explicit libgnutls", config: sdk.Config{AttrLibgnutls: systemLibgnutls}, wantTargets: []string{systemLibgnutls}},
		{name: "pid filter: this process maps no libgnutls", common: sdk.Common{PID: uint32(os.Getpid())}, wantDetail: "maps no libgnutls.so"},
		{name: "pid filter: no such process", common: sdk.Common{PID: 1 << 30}, wantDetail: "reading the mappings of process"},
		{name: "missing", config: sdk.Config{AttrLibgnutls: "/nope/libgnutls.so.30"}, wantDetail: "/nope/libgnutls.so.30 does not exist"},
		{name: "not ELF", config: sdk.Config{AttrLibgnutls: notELF}, wantDetail: "is not an ELF file"},
		{name: "a directory", config: sdk.Config{AttrLibgnutls: dir}, wantDetail: "is not a regular file"},
		{name: "not GnuTLS", config: sdk.Config{AttrLibgnutls: "/bin/ls"}, wantDetail: "/bin/ls does not define gnutls_record_send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, Common: tt.common, CheckOnly: true}, nil)
			if tt.wantDetail == "" {
				if err != nil {
					t.Fatal(err)
				}
				got := tlsrecord.Paths(m.targets)
				if len(got) == 0 {
					t.Fatal("no library to probe")
				}
				if tt.wantTargets != nil && (len(got) != len(tt.wantTargets) || !sameFile(got[0], tt.wantTargets[0])) {
					t.Errorf("targets %v, want %v", got, tt.wantTargets)
				}
				return
			}
			var diags sdk.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("error %v, want diagnostics", err)
			}
			if diags[0].Attribute != AttrLibgnutls || !strings.Contains(diags[0].Detail, tt.wantDetail) {
				t.Errorf("diagnostic %+v, want one on %s saying %q", diags[0], AttrLibgnutls, tt.wantDetail)
			}
		})
	}
}

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}

// TestSpecOptionalSymbols: a library lacking gnutls_transport_set_int2 and
// gnutls_deinit still gets the data probes; each library gets its own.
func TestSpecOptionalSymbols(t *testing.T) {
	m := New()
	m.targets = []target{
		{Path: "/a/libgnutls.so.30", Symbols: []string{symSend, symRecv}},
		{Path: "/b/libgnutls.so.30", Symbols: []string{symSend, symRecv, symSetInt, symDeinit}},
	}
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var uprobes, others int
	for _, p := range spec.Probes {
		if p.Binary != "" {
			uprobes++
		} else {
			others++
		}
	}
	if uprobes != 4+6 || (others != len(tlsrecord.SockTracepoints) && others != len(tlsrecord.Syscalls)) {
		t.Errorf("%d uprobes and %d tracepoints, want 10 and the socket tracepoints", uprobes, others)
	}
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
