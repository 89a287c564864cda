package opensslmod

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestFindVersionText(t *testing.T) {
	tests := []struct {
		name, data, number, suffix string
		ok                         bool
	}{
		{"3.x", "\x00junk\x00OpenSSL 3.0.19 27 Jan 2026\x00more", "3.0.19", "", true},
		{"1.1.1 has two spaces", "\x00OpenSSL 1.1.1w  11 Sep 2023\x00", "1.1.1w", "", true},
		{"3.5", "OpenSSL 3.5.7 30 Sep 2025", "3.5.7", "", true},
		{"quictls", "OpenSSL 3.1.4+quic 24 Oct 2023", "3.1.4", "+quic", true},
		{"fips 1.1.1", "OpenSSL 1.1.1k  FIPS 25 Mar 2021", "1.1.1k", "", true},
		{"vendor suffix", "OpenSSL 1.0.2k-fips  26 Jan 2017", "1.0.2k", "-fips", true},
		{"a message, not the version", "\x00OpenSSL 3.0 is required\x00", "", "", false},
		{"format string", "OpenSSL %d.%d.%d", "", "", false},
		{"nothing", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, number, suffix, ok := findVersionText([]byte(tt.data))
			if ok != tt.ok || number != tt.number || suffix != tt.suffix {
				t.Errorf("got %q %q %v, want %q %q %v", number, suffix, ok, tt.number, tt.suffix, tt.ok)
			}
		})
	}
}

func TestVersionNumber(t *testing.T) {
	for n, want := range map[versionNumber]string{0x30000130: "3.0.19", 0x1010117f: "1.1.1w", 0x30500070: "3.5.7", 0x1010100f: "1.1.1"} {
		if got := n.String(); got != want {
			t.Errorf("%#x is %s, want %s", uint32(n), got, want)
		}
	}
}

func TestLoadFromRDI(t *testing.T) {
	tests := []struct {
		code []byte
		rex  bool
		want int32
		ok   bool
	}{
		{[]byte{0x48, 0x8b, 0x87, 0x18, 0x09, 0, 0, 0x31, 0xff, 0xc3}, true, 0x918, true}, // SSL_get_session, 3.0.19
		{[]byte{0x8b, 0x07, 0x31, 0xff, 0xc3}, false, 0, true},                            // SSL_version
		{[]byte{0x8b, 0x47, 0x48, 0xc3}, false, 0x48, true},
		{[]byte{0x48, 0x8b, 0x47, 0xf8}, true, -8, true},
		{[]byte{0x8b, 0x07}, true, 0, false}, // no REX.W
		{[]byte{0x48, 0x85, 0xff}, true, 0, false},
		{[]byte{0x48, 0x8b, 0x87, 0x18}, true, 0, false},
		{nil, false, 0, false},
	}
	for i, tt := range tests {
		got, ok := loadFromRDI(tt.code, tt.rex)
		if got != tt.want || ok != tt.ok {
			t.Errorf("case %d: %#x %v, want %#x %v", i, got, ok, tt.want, tt.ok)
		}
	}
}

// systemLibcrypto is the libcrypto beside systemLibssl.
const systemLibcrypto = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"

// TestDetectSystemVersion reads the version of this machine's libssl.so.3
// (from its libcrypto: libssl 3 holds no version text) and checks its
// layout against its accessors' code.
func TestDetectSystemVersion(t *testing.T) {
	requireLibssl(t)
	d, err := detectVersion(systemLibssl, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.text, "OpenSSL 3.") || filepath.Base(d.from) != "libcrypto.so.3" || d.suffix != "" {
		t.Errorf("detected %+v", d)
	}
	n, err := versionNum(d.from)
	if err != nil || n.String() != d.number {
		t.Errorf("OpenSSL_version_num of %s: %v (%v), the text says %s", d.from, n, err, d.number)
	}
	tl, diag, ok := resolveLayout(systemLibssl, 0, nil, nil)
	if !ok {
		t.Fatal(diag)
	}
	t.Logf("%s: %s, layout %s, accessors checked: %v", systemLibssl, d.text, tl.row, tl.checked)
	if strings.HasPrefix(d.number, "3.0.") && !slices.Equal(tl.checked, []string{"SSL_get_session", "SSL_version"}) {
		t.Errorf("3.0 accessors checked: %v", tl.checked)
	}
	// A layout contradicting the code is refused.
	bad := tl.layout
	bad.Session += 8
	if _, err := checkAccessors(systemLibssl, bad); err == nil || !strings.Contains(err.Error(), "SSL_get_session") {
		t.Errorf("a wrong session offset passed: %v", err)
	}
}

// fakeOpenSSL copies the system libssl.so.3 and libcrypto.so.3 into a
// directory, the version text of the libcrypto replaced by to (same
// length), and returns the libssl's path.
func fakeOpenSSL(t *testing.T, to string) string {
	t.Helper()
	requireLibssl(t)
	dir := t.TempDir()
	lc, err := os.ReadFile(systemLibcrypto)
	if err != nil {
		t.Fatal(err)
	}
	_, number, _, ok := findVersionText(lc)
	if !ok {
		t.Fatalf("no version text in %s", systemLibcrypto)
	}
	from := "OpenSSL " + number + " "
	if len(to) != len(from) {
		t.Fatalf("fake version %q must be as long as %q", to, from)
	}
	if n := bytes.Count(lc, []byte(from)); n == 0 {
		t.Fatalf("%q not in %s", from, systemLibcrypto)
	}
	lc = bytes.ReplaceAll(lc, []byte(from), []byte(to))
	if err := os.WriteFile(filepath.Join(dir, "libcrypto.so.3"), lc, 0o755); err != nil {
		t.Fatal(err)
	}
	ls, err := os.ReadFile(systemLibssl)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "libssl.so.3")
	if err := os.WriteFile(path, ls, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// pad makes a fake version text as long as this machine's.
func fakeVersion(t *testing.T, version string) string {
	t.Helper()
	requireLibssl(t)
	lc, err := os.ReadFile(systemLibcrypto)
	if err != nil {
		t.Fatal(err)
	}
	_, number, _, ok := findVersionText(lc)
	if !ok {
		t.Fatal("no version text")
	}
	if len(version) > len(number) {
		t.Fatalf("%s longer than %s", version, number)
	}
	return "OpenSSL " + version + strings.Repeat(" ", len(number)-len(version)+1)
}

// TestUnknownVersionRefused: a libssl whose libcrypto says OpenSSL 9.9.9
// is refused by Init in the key modes, with the version found, where, and
// how to override; with openssl_version set it is accepted; text mode does
// not care.
func TestUnknownVersionRefused(t *testing.T) {
	fake := fakeOpenSSL(t, fakeVersion(t, "9.9.9"))
	keys := filepath.Join(t.TempDir(), "keys.log")
	init := func(cfg sdk.Config) error {
		return New().Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: cfg, CheckOnly: true}, nil)
	}
	err := init(sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: fake})
	var diags sdk.Diagnostics
	if !errors.As(err, &diags) || !diags.HasErrors() {
		t.Fatalf("Init: %v, want a refusal", err)
	}
	d := diags[0]
	for _, want := range []string{"OpenSSL 9.9.9", filepath.Join(filepath.Dir(fake), "libcrypto.so.3"), "not a release whose layout is known",
		"1.1.1 to 1.1.1w and 3.0 to 3.5", `openssl_version = "3.0.0"`, "offsets = [", "handshake_secret"} {
		if !strings.Contains(d.Detail, want) {
			t.Errorf("diagnostic does not say %q:\n%s", want, d.Detail)
		}
	}
	if d.Attribute != AttrLibssl {
		t.Errorf("diagnostic on %q, want %q, where the library was named", d.Attribute, AttrLibssl)
	}
	t.Logf("%s: %s", d.Summary, d.Detail)

	if err := init(sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: fake, AttrOpenSSLVersion: "3.0.0"}); err != nil {
		t.Errorf("with openssl_version: %v", err)
	}
	if err := init(sdk.Config{AttrLibssl: fake}); err != nil {
		t.Errorf("text mode: %v", err)
	}
	// Offsets alone must be complete.
	err = init(sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: fake, AttrOffsets: []string{"handshake_secret=0x584"}})
	if !errors.As(err, &diags) || diags[0].Attribute != AttrOffsets || !strings.Contains(diags[0].Detail, "must be set") {
		t.Errorf("incomplete offsets: %v", err)
	}
	// A fork's suffix is refused too.
	fork := fakeOpenSSL(t, fakeVersion(t, "3.0.1+"))
	err = init(sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: fork})
	if !errors.As(err, &diags) || !strings.Contains(diags[0].Detail, `fork or vendor build ("+"`) {
		t.Errorf("fork: %v", err)
	}
}

// TestFoundUnknownVersionSkipped: a libssl found (not configured) whose
// version is unknown is left out when another one is usable, refused on
// openssl_version when it is the only one.
func TestFoundUnknownVersionSkipped(t *testing.T) {
	fake := fakeOpenSSL(t, fakeVersion(t, "9.9.9"))
	cfg := sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: filepath.Join(t.TempDir(), "k.log")}.WithDefaults(schema)
	var k keyMode
	kept, diags := k.initKeys(ModeKeylog, cfg, 0, []target{{Path: fake}, {Path: systemLibssl}}, nil, hclog.NewNullLogger())
	if diags.HasErrors() || len(kept) != 1 || kept[0].Path != systemLibssl || len(k.layouts) != 1 {
		t.Errorf("kept %v, layouts %d: %v", kept, len(k.layouts), diags)
	}
	_, diags = k.initKeys(ModeKeylog, cfg, 0, []target{{Path: fake}}, nil, hclog.NewNullLogger())
	if !diags.HasErrors() || diags[0].Attribute != AttrOpenSSLVersion || !strings.Contains(diags[0].Detail, "OpenSSL 9.9.9") {
		t.Errorf("only an unknown libssl found: %v", diags)
	}
}

// TestKeyModeAttributes: each mode's attributes are checked, with a
// diagnostic naming the attribute.
func TestKeyModeAttributes(t *testing.T) {
	requireLibssl(t)
	dir := t.TempDir()
	keys, pcap := filepath.Join(dir, "k.log"), filepath.Join(dir, "o.pcapng")
	tests := []struct {
		name   string
		config sdk.Config
		attr   string
		detail string
	}{
		{"keylog", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys}, "", ""},
		{"keylog without file", sdk.Config{AttrMode: ModeKeylog}, AttrKeylogFile, `mode "keylog" needs keylog_file`},
		{"keylog file in no directory", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: "/nope/k.log"}, AttrKeylogFile, "/nope"},
		{"keylog file is a directory", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: dir}, AttrKeylogFile, "it is a directory"},
		{"keylog with ifname", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrIfname: "lo"}, AttrIfname, `applies to mode "pcap"`},
		{"text with keylog_file", sdk.Config{AttrKeylogFile: keys}, AttrKeylogFile, `applies to mode "keylog" or "pcap"`},
		{"pcap", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap, AttrIfname: "lo", AttrPort: int64(443), AttrHost: "127.0.0.1"}, "", ""},
		{"pcap with a key file too", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap, AttrIfname: "lo", AttrKeylogFile: keys}, "", ""},
		{"pcap without file", sdk.Config{AttrMode: ModePcap, AttrIfname: "lo"}, AttrPcapFile, "needs pcap_file"},
		{"pcap without ifname", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap}, AttrIfname, "needs ifname"},
		{"pcap, no such interface", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap, AttrIfname: "nope0"}, AttrIfname, `"nope0"`},
		{"pcap, bad port", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap, AttrIfname: "lo", AttrPort: int64(70000)}, AttrPort, "70000"},
		{"pcap, bad host", sdk.Config{AttrMode: ModePcap, AttrPcapFile: pcap, AttrIfname: "lo", AttrHost: "localhost"}, AttrHost, "not an IP address"},
		{"unknown openssl_version", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrOpenSSLVersion: "3.9.0"}, AttrOpenSSLVersion, "not in the layout table"},
		{"bad offsets", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrOffsets: []string{"x=1"}}, AttrOffsets, "unknown offset"},
		{"offsets contradicting the code", sdk.Config{AttrMode: ModeKeylog, AttrKeylogFile: keys, AttrLibssl: systemLibssl, AttrOffsets: []string{"session=0x920"}},
			AttrLibssl, "SSL_get_session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, CheckOnly: true}, nil)
			if tt.attr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var diags sdk.Diagnostics
			if !errors.As(err, &diags) || diags[0].Attribute != tt.attr || !strings.Contains(diags[0].Detail, tt.detail) {
				t.Errorf("Init: %v, want a diagnostic on %s saying %q", err, tt.attr, tt.detail)
			}
		})
	}
	if _, err := os.Stat(keys); err == nil {
		t.Error("Init created the key file")
	}
}
