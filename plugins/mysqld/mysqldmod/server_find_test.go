package mysqldmod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc makes a /proc of processes whose exe links name the given
// files, and points procDir and defaultPaths at it for the test.
func fakeProc(t *testing.T, exes map[string]string, defaults []string) {
	t.Helper()
	dir := t.TempDir()
	for pid, exe := range exes {
		if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(dir, pid, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	oldProc, oldDefaults := procDir, defaultPaths
	procDir, defaultPaths = dir, defaults
	t.Cleanup(func() { procDir, defaultPaths = oldProc, oldDefaults })
}

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindServer(t *testing.T) {
	bin := t.TempDir()
	maria := touch(t, filepath.Join(bin, "a", "mariadbd"))
	other := touch(t, filepath.Join(bin, "b", "mysqld"))
	shell := touch(t, filepath.Join(bin, "bash"))
	fallback := touch(t, filepath.Join(bin, "c", "mariadbd"))

	tests := []struct {
		name     string
		exes     map[string]string
		defaults []string
		pid      uint32
		want     string
		wantErr  []string
	}{
		{name: "one server, two processes", exes: map[string]string{"10": maria, "11": maria, "12": shell}, want: maria},
		{name: "two binaries", exes: map[string]string{"10": maria, "11": other}, wantErr: []string{"several server binaries", maria, other}},
		{name: "none running: the default path", exes: map[string]string{"12": shell}, defaults: []string{filepath.Join(bin, "nope"), fallback}, want: fallback},
		{name: "none at all", exes: map[string]string{"12": shell}, defaults: []string{filepath.Join(bin, "nope")}, wantErr: []string{"no mariadbd or mysqld process runs", "nope"}},
		{name: "the pid filter's process", exes: map[string]string{"10": maria, "12": shell}, pid: 12, want: shell},
		{name: "the pid filter's process is gone", exes: map[string]string{"10": maria}, pid: 99, wantErr: []string{"process 99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeProc(t, tt.exes, tt.defaults)
			got, err := findServer(tt.pid)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("found %s, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("found %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
