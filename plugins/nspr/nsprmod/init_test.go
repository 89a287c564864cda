package nsprmod

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != Name || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
	if a, ok := info.Schema.Lookup(AttrNSPRLib); !ok || a.Type != sdk.TypeString || a.Default != "" {
		t.Errorf("attribute %s: %+v", AttrNSPRLib, a)
	}
	if a, ok := info.Schema.Lookup(AttrSSLOnly); !ok || a.Type != sdk.TypeBool || a.Default != true {
		t.Errorf("attribute %s: %+v", AttrSSLOnly, a)
	}
}

// requireNSPR skips (or fails under ECAPHOST_E2E=1) without the system
// libnspr4 the Init tests point at.
func requireNSPR(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemNSPR); err != nil {
		harness.SkipOrFail(t, "needs %s (apt-get install libnspr4)", systemNSPR)
	}
}

func TestInit(t *testing.T) {
	requireNSPR(t)
	dir := t.TempDir()
	notELF := filepath.Join(dir, "libnspr4.so")
	if err := os.WriteFile(notELF, []byte("not a library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.so")
	if err := os.Symlink(systemNSPR, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		config      sdk.Config
		common      sdk.Common
		wantAttr    string
		wantDetail  string
		wantTargets []string // compared with os.SameFile; nil: any non-empty
		wantSSLOnly bool
	}{
		{name: "defaults find the system libnspr4", wantSSLOnly: true},
		{name: "explicit nspr_lib", config: sdk.Config{AttrNSPRLib: systemNSPR}, wantTargets: []string{systemNSPR}, wantSSLOnly: true},
		{name: "through a link", config: sdk.Config{AttrNSPRLib: link}, wantTargets: []string{systemNSPR}, wantSSLOnly: true},
		{name: "every layer", config: sdk.Config{AttrSSLOnly: false}, wantSSLOnly: false},
		{name: "pid filter: this process maps no NSPR", common: sdk.Common{PID: uint32(os.Getpid())},
			wantAttr: AttrNSPRLib, wantDetail: "maps no libnspr4.so"},
		{name: "pid filter: no such process", common: sdk.Common{PID: 1 << 30},
			wantAttr: AttrNSPRLib, wantDetail: "reading the mappings of process " + strconv.Itoa(1<<30)},
		{name: "missing", config: sdk.Config{AttrNSPRLib: "/nope/libnspr4.so"}, wantAttr: AttrNSPRLib, wantDetail: "/nope/libnspr4.so does not exist"},
		{name: "not ELF", config: sdk.Config{AttrNSPRLib: notELF}, wantAttr: AttrNSPRLib, wantDetail: notELF + " is not an ELF file"},
		{name: "a directory", config: sdk.Config{AttrNSPRLib: dir}, wantAttr: AttrNSPRLib, wantDetail: dir + " is not a regular file"},
		{name: "not NSPR", config: sdk.Config{AttrNSPRLib: "/bin/ls"}, wantAttr: AttrNSPRLib, wantDetail: "/bin/ls does not define PR_Write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, Common: tt.common, CheckOnly: true}, nil)
			if tt.wantAttr == "" {
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
				if m.sslOnly != tt.wantSSLOnly {
					t.Errorf("ssl_only %v, want %v", m.sslOnly, tt.wantSSLOnly)
				}
				return
			}
			var diags sdk.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("error %v, want diagnostics", err)
			}
			if diags[0].Attribute != tt.wantAttr || !strings.Contains(diags[0].Detail, tt.wantDetail) {
				t.Errorf("diagnostic %+v, want one on %s saying %q", diags[0], tt.wantAttr, tt.wantDetail)
			}
		})
	}
}

// TestCheckTarget: the symbols of the system libnspr4 are all probed.
func TestCheckTarget(t *testing.T) {
	requireNSPR(t)
	tg, d, ok := checkTarget(systemNSPR)
	if !ok {
		t.Fatal(d)
	}
	if !slices.Equal(tg.Symbols, probedSymbols()) {
		t.Errorf("symbols %v, want %v", tg.Symbols, probedSymbols())
	}
}

func TestDedupeTargets(t *testing.T) {
	requireNSPR(t)
	link := filepath.Join(t.TempDir(), "libnspr4.so")
	if err := os.Symlink(systemNSPR, link); err != nil {
		t.Fatal(err)
	}
	got := tlsrecord.Distinct([]target{{Path: systemNSPR}, {Path: link}, {Path: "/nope/a.so"}, {Path: "/nope/a.so"}})
	if len(got) != 3 || got[0].Path != systemNSPR || got[1].Path != "/nope/a.so" || got[2].Path != "/nope/a.so" {
		t.Errorf("dedupeTargets = %+v", got)
	}
}

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}

// TestSpec: the probes follow the symbols a target defines, and ssl_only
// reaches the kernel constant.
func TestSpec(t *testing.T) {
	m := New()
	m.targets = []target{{Path: "/a/libnspr4.so", Symbols: []string{symWrite, symRead}}, {Path: "/b/libnss3.so", Symbols: probedSymbols()}}
	for _, sslOnly := range []bool{true, false} {
		m.sslOnly = sslOnly
		spec, err := m.Spec()
		if err != nil {
			t.Fatal(err)
		}
		var uprobes int
		for _, p := range spec.Probes {
			if p.Binary != "" {
				uprobes++
			}
		}
		if want := 4 + len(probeDefs); uprobes != want {
			t.Errorf("%d uprobes, want %d", uprobes, want)
		}
		want := uint32(0)
		if sslOnly {
			want = 1
		}
		if v, ok := spec.Constants[constSSLOnly].(uint32); !ok || v != want {
			t.Errorf("ssl_only %v: constant %v, want %d", sslOnly, spec.Constants[constSSLOnly], want)
		}
	}
}

// probedSymbols are the distinct symbols of probeDefs.
func probedSymbols() []string {
	var out []string
	for _, p := range probeDefs {
		if !slices.Contains(out, p.Symbol) {
			out = append(out, p.Symbol)
		}
	}
	return out
}
