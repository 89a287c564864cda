package pgmod

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "postgres" || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
}

func TestServerVersion(t *testing.T) {
	tests := []struct {
		data    string
		version string
		major   int
	}{
		{"\x00PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit\x00", "15.18", 15},
		{"xxPostgreSQL 12.1 on aarch64-unknown-linux-gnu, compiled by gcc, 64-bit\x00", "12.1", 12},
		{"PostgreSQL 18beta1 on x86_64-pc-linux-gnu, compiled by clang\x00", "18beta1", 18},
		{"\x00PostgreSQL 9.6.24 on x86_64-pc-linux-gnu, compiled by gcc\x00", "9.6", 9},
		{"PostgreSQL is a database\x00", "", 0},
		{"", "", 0},
	}
	for _, tt := range tests {
		v, major := serverVersion([]byte(tt.data))
		if v != tt.version || major != tt.major {
			t.Errorf("serverVersion(%q) = %q, %d; want %q, %d", tt.data, v, major, tt.version, tt.major)
		}
	}
}

// TestVersionCheck: a release the module does not know is refused with
// the version found and the override; the override accepts it.
func TestVersionCheck(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		major    int
		override string
		want     string // "" accepted
	}{
		{name: "known", version: "15.18", major: 15},
		{name: "newer", version: "18.1", major: 18, want: `is PostgreSQL 18.1; this module knows 12 to 17 (tested: 15). To run it as if it were a known release, set server_version = "17"`},
		{name: "older", version: "11.22", major: 11, want: `is PostgreSQL 11.22; this module knows 12 to 17`},
		{name: "no version string", want: "holds no PostgreSQL version string; if it is a PostgreSQL 12 to 17 server, set server_version"},
		{name: "newer with override", version: "18.1", major: 18, override: "17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, d, ok := checkVersion(server{path: "/srv/pg/postgres", version: tt.version, major: tt.major}, tt.override)
			if tt.want == "" {
				if !ok {
					t.Fatalf("refused: %+v", d)
				}
				if tt.override != "" && s.major != 17 {
					t.Errorf("major %d with override %s", s.major, tt.override)
				}
				return
			}
			if ok || d.Attribute != AttrServerVersion || !strings.Contains(d.Detail, tt.want) {
				t.Errorf("diagnostic %+v (accepted %v), want one on %s saying %q", d, ok, AttrServerVersion, tt.want)
			}
		})
	}
}

// TestInit: bad binary settings and overrides get diagnostics naming the
// attribute.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "postgres")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		config     sdk.Config
		wantAttr   string
		wantDetail string
	}{
		{name: "missing", config: sdk.Config{AttrBinary: "/nonexistent/postgres"}, wantAttr: AttrBinary, wantDetail: "does not exist"},
		{name: "not ELF", config: sdk.Config{AttrBinary: notELF}, wantAttr: AttrBinary, wantDetail: "not an ELF file"},
		{name: "directory", config: sdk.Config{AttrBinary: dir}, wantAttr: AttrBinary, wantDetail: "not a regular file"},
		{name: "not a server", config: sdk.Config{AttrBinary: "/bin/true"}, wantAttr: AttrBinary,
			wantDetail: "/bin/true does not define pgstat_report_activity: is it the PostgreSQL server binary (postgres)?"},
		{name: "override unknown", config: sdk.Config{AttrBinary: "/bin/true", AttrServerVersion: "9"}, wantAttr: AttrServerVersion,
			wantDetail: "PostgreSQL 9: this module knows 12 to 17"},
		{name: "override not a number", config: sdk.Config{AttrServerVersion: "latest"}, wantAttr: AttrServerVersion,
			wantDetail: `"latest" is not a major release number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, CheckOnly: true}, nil)
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

// TestInitDebianServer: Debian's server is accepted, its version read.
func TestInitDebianServer(t *testing.T) {
	bin, err := pgBinDir()
	if err != nil {
		harness.SkipOrFail(t, "%v", err)
		return
	}
	m := New()
	if err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: sdk.Config{AttrBinary: filepath.Join(bin, "postgres")}, CheckOnly: true}, nil); err != nil {
		t.Fatal(err)
	}
	if len(m.servers) != 1 || m.servers[0].major < minMajor || len(m.servers[0].symbols) != len(probes) {
		t.Errorf("servers %+v", m.servers)
	}
}

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}

// TestUnknownReleaseBinary: copies of Debian's server whose version string
// names another release are refused when the host validates the config,
// with the version found and the override; the override lets a newer one
// through, as the release named.
func TestUnknownReleaseBinary(t *testing.T) {
	bin, err := pgBinDir()
	if err != nil {
		harness.SkipOrFail(t, "%v", err)
		return
	}
	data, err := os.ReadFile(filepath.Join(bin, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	found := versionRE.FindSubmatch(data)
	if found == nil {
		t.Fatalf("%s/postgres carries no version string", bin)
	}
	old := "PostgreSQL " + string(found[1]) + "."
	for _, tt := range []struct {
		major, want string
		override    string
	}{
		{major: "18", want: `this module knows 12 to 17 (tested: 15). To run it as if it were a known release, set server_version = "17"`},
		{major: "11", want: "this module knows 12 to 17"},
		{major: "18", override: "17"},
	} {
		t.Run(tt.major+"/"+tt.override, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "postgres")
			if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte(old), []byte("PostgreSQL "+tt.major+".")), 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := sdk.Config{AttrBinary: path}
			if tt.override != "" {
				cfg[AttrServerVersion] = tt.override
				if d := harness.New(t, ebpfbase.New(New())).Configure(t, sdk.Settings{Config: cfg, CheckOnly: true}); d.HasErrors() {
					t.Errorf("with server_version %s: %v", tt.override, d)
				}
				return
			}
			d := harness.New(t, ebpfbase.New(New())).WantConfigError(t, cfg, AttrServerVersion, path)
			if !strings.Contains(d[0].Detail, "is PostgreSQL "+tt.major+".") || !strings.Contains(d[0].Detail, tt.want) {
				t.Errorf("diagnostic %q, want the version found (%s.x) and %q", d[0].Detail, tt.major, tt.want)
			}
		})
	}
}
