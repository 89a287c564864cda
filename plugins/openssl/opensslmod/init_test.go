package opensslmod

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "openssl" || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
	mode, ok := info.Schema.Lookup(AttrMode)
	if !ok || mode.Default != ModeText || !slices.Equal(mode.OneOf, []string{ModeText, ModeKeylog, ModePcap}) {
		t.Errorf("mode attribute %+v", mode)
	}
	for _, a := range []string{AttrLibssl, AttrBinary} {
		if at, ok := info.Schema.Lookup(a); !ok || at.Type != sdk.TypeString || at.Default != "" {
			t.Errorf("attribute %s: %+v", a, at)
		}
	}
}

// requireLibssl skips (or fails under ECAPHOST_E2E=1) without the system
// libssl the Init tests point at.
func requireLibssl(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemLibssl); err == nil {
		return
	}
	if os.Getenv("ECAPHOST_E2E") == "1" {
		t.Fatalf("ECAPHOST_E2E=1 but %s is missing", systemLibssl)
	}
	t.Skipf("needs %s", systemLibssl)
}

func TestInit(t *testing.T) {
	requireLibssl(t)
	dir := t.TempDir()
	notELF := filepath.Join(dir, "libssl.so.3")
	if err := os.WriteFile(notELF, []byte("not a library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		config      sdk.Config
		common      sdk.Common
		wantAttr    string
		wantDetail  string
		wantTargets []string // compared with os.SameFile; nil: any non-empty
	}{
		{name: "defaults find the system libssl", config: sdk.Config{}},
		{name: "explicit libssl", config: sdk.Config{AttrLibssl: systemLibssl}, wantTargets: []string{systemLibssl}},
		{name: "binary alone", config: sdk.Config{AttrBinary: systemLibssl}, wantTargets: []string{systemLibssl}},
		{name: "binary and libssl, the same file once", config: sdk.Config{AttrBinary: systemLibssl, AttrLibssl: "/lib/x86_64-linux-gnu/libssl.so.3"},
			wantTargets: []string{systemLibssl}},
		{name: "pid filter: the libssl of this process's mappings is none", common: sdk.Common{PID: uint32(os.Getpid())},
			wantAttr: AttrLibssl, wantDetail: "maps no libssl.so"},
		{name: "libssl missing", config: sdk.Config{AttrLibssl: "/nope/libssl.so.3"}, wantAttr: AttrLibssl, wantDetail: "/nope/libssl.so.3 does not exist"},
		{name: "libssl not ELF", config: sdk.Config{AttrLibssl: notELF}, wantAttr: AttrLibssl, wantDetail: "is not an ELF file"},
		{name: "libssl is a directory", config: sdk.Config{AttrLibssl: dir}, wantAttr: AttrLibssl, wantDetail: "is not a regular file"},
		{name: "libssl without SSL_write", config: sdk.Config{AttrLibssl: "/bin/ls"}, wantAttr: AttrLibssl, wantDetail: "/bin/ls does not define SSL_write"},
		{name: "binary without SSL_write", config: sdk.Config{AttrBinary: "/bin/ls"}, wantAttr: AttrBinary, wantDetail: "/bin/ls does not define SSL_write"},
		{name: "binary missing", config: sdk.Config{AttrBinary: "/nope/node"}, wantAttr: AttrBinary, wantDetail: "/nope/node does not exist"},
		{name: "unknown mode", config: sdk.Config{AttrMode: "pcapng"}, wantAttr: AttrMode, wantDetail: `must be one of text, keylog, pcap, not "pcapng"`},
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
					t.Fatal("no binary to probe")
				}
				if tt.wantTargets != nil {
					if len(got) != len(tt.wantTargets) {
						t.Fatalf("targets %v, want %v", got, tt.wantTargets)
					}
					for i := range got {
						if !sameFile(got[i], tt.wantTargets[i]) {
							t.Errorf("target %d is %s, want %s", i, got[i], tt.wantTargets[i])
						}
					}
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

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}

// TestSpecOptionalSymbols: a binary lacking the _ex forms and SSL_set_fd
// (an old or trimmed OpenSSL) gets the probes it can have.
func TestSpecOptionalSymbols(t *testing.T) {
	m := New()
	m.targets = []target{{Path: "/a/libssl.so", Symbols: []string{symWrite, symRead}}, {Path: "/b/node", Symbols: []string{symWrite, symRead, symSetFD}}}
	for _, tc := range []struct {
		name        string
		sockPath    string
		prefix      string
		tracepoints int
		uprobes     int
	}{
		// SSL_write's entry, SSL_read's entry and return on each binary,
		// and node's SSL_set_fd.
		{"sock tracepoints", "/", "raw_tracepoint/sock_", len(sockTracepoints), 7},
		// and SSL_write's return.
		{"syscall fallback", "/nonexistent", "tracepoint/syscalls/sys_enter_", len(syscalls), 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := sockTracepointPath
			sockTracepointPath = tc.sockPath
			defer func() { sockTracepointPath = old }()
			spec, err := m.Spec()
			if err != nil {
				t.Fatal(err)
			}
			var uprobes, tracepoints int
			for _, p := range spec.Probes {
				switch {
				case p.Binary != "":
					uprobes++
				case strings.HasPrefix(p.Section, tc.prefix):
					tracepoints++
				}
			}
			if uprobes != tc.uprobes || tracepoints != tc.tracepoints || len(spec.Probes) != tc.uprobes+tc.tracepoints {
				t.Errorf("%d uprobes and %d %s probes of %d, want %d and %d", uprobes, tracepoints, tc.prefix, len(spec.Probes), tc.uprobes, tc.tracepoints)
			}
		})
	}
}

// TestSpecWritesAtEntry: in text mode on a kernel with the sock
// tracepoints, writes lose their return probe and the kernel side is told
// to capture them at entry; SSL_do_handshake is probed for its frame.
// Without the sock tracepoints the returns stay; text mode then probes
// SSL_do_handshake no more than before. The key modes probe the
// handshake and SSL_new, and none of the data calls (their fallback
// attaches its own probes while needed).
func TestSpecWritesAtEntry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		sockPath string
		atEntry  bool
	}{
		{"text, sock tracepoints", ModeText, "/", true},
		{"text, syscall fallback", ModeText, "/nonexistent", false},
		{"keylog, sock tracepoints", ModeKeylog, "/", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := sockTracepointPath
			sockTracepointPath = tc.sockPath
			defer func() { sockTracepointPath = old }()
			m := New()
			m.mode = tc.mode
			m.targets = []target{{Path: "/lib/libssl.so.3", Symbols: []string{symWrite, symRead, symWriteEx, symHandshake, symNew}}}
			spec, err := m.Spec()
			if err != nil {
				t.Fatal(err)
			}
			has := map[string]bool{}
			for _, p := range spec.Probes {
				has[p.Section] = true
			}
			text := tc.mode == ModeText
			for _, sec := range []string{"uprobe/SSL_write", "uprobe/SSL_write_ex", "uprobe/SSL_read", "uretprobe/SSL_read"} {
				if has[sec] != text {
					t.Errorf("probe %s attached: %v, want %v", sec, has[sec], text)
				}
			}
			if has["uretprobe/SSL_new"] == text {
				t.Errorf("probe uretprobe/SSL_new attached: %v, want %v", has["uretprobe/SSL_new"], !text)
			}
			handshake := tc.atEntry || !text
			for _, sec := range []string{"uprobe/SSL_do_handshake", "uretprobe/SSL_do_handshake"} {
				if has[sec] != handshake {
					t.Errorf("probe %s attached: %v, want %v", sec, has[sec], handshake)
				}
			}
			for _, sec := range []string{"uretprobe/SSL_write", "uretprobe/SSL_write_ex"} {
				if want := text && !tc.atEntry; has[sec] != want {
					t.Errorf("probe %s attached: %v, want %v", sec, has[sec], want)
				}
			}
			if got := spec.Constants[constWriteAtEntry] == uint32(1); got != tc.atEntry {
				t.Errorf("%s set: %v, want %v (constants %v)", constWriteAtEntry, got, tc.atEntry, spec.Constants)
			}
		})
	}
}
