package lock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestRoundTripAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	if f, err := Read(path); f != nil || err != nil {
		t.Fatalf("missing file: %v, %v; want no lock", f, err)
	}
	if _, err := Write(path, []Entry{{Name: "z", Path: "/p/z", SHA256: sumA}, {Name: "bash", Path: "/p/b", SHA256: sumA}}); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil || f == nil || len(f.Plugins) != 2 || f.Plugins[0].Name != "bash" {
		t.Fatalf("Read = %+v, %v", f, err)
	}
	cases := []struct {
		name, plugin, sum string
		want              error
	}{
		{"match", "bash", sumA, nil},
		{"changed", "bash", strings.Repeat("b", 64), ErrMismatch},
		{"unknown", "nspr", sumA, ErrNotLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Verify(tc.plugin, tc.sum)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "plugin "+tc.plugin) {
				t.Errorf("error %q does not name the plugin", err)
			}
		})
	}
}

func TestReadRejectsBadFiles(t *testing.T) {
	cases := map[string]string{
		"not json":      "{",
		"wrong version": `{"version": 2, "plugins": []}`,
		"short digest":  `{"version": 1, "plugins": [{"name": "a", "sha256": "abc"}]}`,
		"no name":       `{"version": 1, "plugins": [{"sha256": "` + sumA + `"}]}`,
		"not hex":       `{"version": 1, "plugins": [{"name": "a", "sha256": "` + strings.Repeat("g", 64) + `"}]}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), DefaultName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if f, err := Read(path); err == nil {
				t.Fatalf("Read accepted %q: %+v", content, f)
			}
		})
	}
}

func TestPathFor(t *testing.T) {
	cases := []struct{ explicit, config, want string }{
		{"/x/l.lock", "/etc/c.hcl", "/x/l.lock"},
		{"", "/etc/ecaphost/c.hcl", "/etc/ecaphost/ecaphost.lock"},
		{"", "", "ecaphost.lock"},
	}
	for _, tc := range cases {
		if got := PathFor(tc.explicit, tc.config); got != tc.want {
			t.Errorf("PathFor(%q, %q) = %q, want %q", tc.explicit, tc.config, got, tc.want)
		}
	}
}
