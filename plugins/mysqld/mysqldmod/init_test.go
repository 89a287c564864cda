package mysqldmod

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
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
	if info.Name != "mysqld" || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
}

// unknownRelease copies the Debian server with its version text changed
// to MariaDB 13: a release whose layout the module does not know.
func unknownRelease(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(debianServer)
	if err != nil {
		t.Skipf("%s: %v", debianServer, err)
	}
	loc := mariaVersion.FindIndex(data)
	if loc == nil {
		t.Fatalf("%s carries no MariaDB version", debianServer)
	}
	old := data[loc[0]:loc[1]]
	repl := append([]byte("13"), old[bytes.IndexByte(old, '.'):]...)
	if len(repl) != len(old) {
		repl = append([]byte("1"), old[bytes.IndexByte(old, '.'):]...) // a one-digit major
	}
	path := filepath.Join(t.TempDir(), "mariadbd")
	if err := os.WriteFile(path, bytes.ReplaceAll(data, old, repl), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hasServer := true
	if _, err := os.Stat(debianServer); err != nil {
		hasServer = false
	}
	tests := []struct {
		name       string
		config     sdk.Config
		needServer bool
		wantAttr   string
		wantDetail []string
	}{
		{name: "binary missing", config: sdk.Config{AttrBinary: "/nonexistent/mariadbd"}, wantAttr: AttrBinary, wantDetail: []string{"does not exist"}},
		{name: "binary a directory", config: sdk.Config{AttrBinary: dir}, wantAttr: AttrBinary, wantDetail: []string{"not a regular file"}},
		{name: "binary a script", config: sdk.Config{AttrBinary: script}, wantAttr: AttrBinary, wantDetail: []string{"not an ELF file"}},
		{name: "binary not a database server", config: sdk.Config{AttrBinary: "/bin/true"}, wantAttr: AttrBinary,
			wantDetail: []string{"/bin/true does not define dispatch_command", "not a MariaDB or MySQL server"}},
		{name: "offsets malformed", config: sdk.Config{AttrOffsets: []string{"thd_thread_id:8"}}, wantAttr: AttrOffsets, wantDetail: []string{"not name=offset"}},
		{name: "offsets unknown name", config: sdk.Config{AttrOffsets: []string{"nope=8"}}, wantAttr: AttrOffsets, wantDetail: []string{"unknown offset", "thd_thread_id"}},
		{name: "server_version malformed", needServer: true, config: sdk.Config{AttrBinary: debianServer, AttrServerVersion: "ten"}, wantAttr: AttrServerVersion, wantDetail: []string{"not a MariaDB release"}},
		{name: "server_version unknown", needServer: true, config: sdk.Config{AttrBinary: debianServer, AttrServerVersion: "12.0"}, wantAttr: AttrServerVersion,
			wantDetail: []string{"MariaDB 12.0 (server_version)", "knows MariaDB 10.x and 11.x", AttrServerVersion, AttrOffsets}},
		{name: "Debian's server", needServer: true, config: sdk.Config{AttrBinary: debianServer}},
		{name: "Debian's server read as 11.4", needServer: true, config: sdk.Config{AttrBinary: debianServer, AttrServerVersion: "11.4"}},
		{name: "Debian's server with offsets", needServer: true, config: sdk.Config{AttrBinary: debianServer, AttrOffsets: []string{"thd_thread_id=0x3f18"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needServer && !hasServer {
				t.Skipf("needs %s", debianServer)
			}
			m := New()
			err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, CheckOnly: true}, nil)
			if tt.wantAttr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.srv.path != debianServer || m.srv.dispatch == "" || m.layout.THDThreadID <= 0 {
					t.Errorf("server %+v layout %s", m.srv, m.layout)
				}
				return
			}
			var diags sdk.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("error %v, want diagnostics", err)
			}
			if diags[0].Attribute != tt.wantAttr {
				t.Errorf("diagnostic on %q, want %q: %+v", diags[0].Attribute, tt.wantAttr, diags[0])
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(diags[0].Detail, w) {
					t.Errorf("diagnostic %q does not say %q", diags[0].Detail, w)
				}
			}
		})
	}
}

// TestUnknownVersionOverGRPC: a server binary carrying a release the
// module does not know is refused when the host validates the config,
// with the version found and the attribute to set; server_version then
// lets it through.
func TestUnknownVersionOverGRPC(t *testing.T) {
	path := unknownRelease(t)
	h := harness.New(t, ebpfbase.New(New()))
	d := h.WantConfigError(t, sdk.Config{AttrBinary: path}, AttrServerVersion, path)
	for _, w := range []string{"MariaDB 13.", "-MariaDB", "server_version", "offsets"} {
		if !strings.Contains(d[0].Detail, w) {
			t.Errorf("diagnostic %q does not say %q", d[0].Detail, w)
		}
	}
	if d := harness.New(t, ebpfbase.New(New())).Configure(t, sdk.Settings{Config: sdk.Config{AttrBinary: path, AttrServerVersion: "11.8"}, CheckOnly: true}); d.HasErrors() {
		t.Errorf("with server_version: %v", d)
	}
	harness.New(t, ebpfbase.New(New())).WantConfigError(t, sdk.Config{AttrBinary: "/bin/true"}, AttrBinary, "does not define dispatch_command")
}

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}

// fakeMySQL builds, with clang-16, an ELF binary shaped like a MySQL
// server as far as Init looks: MySQL's dispatch_command(THD*, const
// COM_DATA*, enum_server_command) defined, its version in .rodata.
func fakeMySQL(t *testing.T, version string) string {
	t.Helper()
	cc, err := exec.LookPath("clang-16")
	if err != nil {
		harness.SkipOrFail(t, "building a MySQL-shaped binary needs clang-16: %v", err)
		return ""
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "mysqld.c")
	code := `__attribute__((used)) const char server_name[] = "MySQL Community Server - GPL";
__attribute__((used)) const char server_version[] = "` + version + `";
void dispatch(void) __asm__("` + dispatchMySQL + `");
__attribute__((used, noinline)) void dispatch(void) {}
int main(void) { dispatch(); return 0; }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mysqld")
	if out, err := exec.Command(cc, "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	return bin
}

// TestMySQLRefused: MySQL 5.7 and 8.x servers are recognized and refused
// when the host validates the config, with the version found; neither
// server_version nor offsets lets them through.
func TestMySQLRefused(t *testing.T) {
	for _, version := range []string{"8.0.36", "5.7.44", "8.4.3"} {
		t.Run(version, func(t *testing.T) {
			bin := fakeMySQL(t, version)
			for _, cfg := range []sdk.Config{
				{AttrBinary: bin},
				{AttrBinary: bin, AttrServerVersion: "10.11"},
			} {
				d := harness.New(t, ebpfbase.New(New())).WantConfigError(t, cfg, AttrBinary, bin)
				for _, w := range []string{"is MySQL (version " + version + ")", "not supported", "MariaDB 10.x and 11.x", "server_version and offsets do not apply"} {
					if !strings.Contains(d[0].Detail, w) {
						t.Errorf("config %v: diagnostic %q does not say %q", cfg, d[0].Detail, w)
					}
				}
			}
		})
	}
}
