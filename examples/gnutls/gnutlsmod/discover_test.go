package gnutlsmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

func TestLibgnutlsInMaps(t *testing.T) {
	data, err := os.ReadFile("testdata/maps")
	if err != nil {
		t.Fatal(err)
	}
	got := libfind.InMaps(data, isLibgnutls)
	want := []string{"/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3", "/opt/my gnutls/lib/libgnutls.so.30"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestDiscoverWithPID reads a fake /proc: the maps of a process whose root
// is this process's root, then of one in another mount namespace.
func TestDiscoverWithPID(t *testing.T) {
	fake := t.TempDir()
	old := procDir
	procDir = fake
	t.Cleanup(func() { procDir = old })
	pidDir := filepath.Join(fake, "42")
	if err := os.MkdirAll(pidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/maps")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pidDir, "maps"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(pidDir, "root")); err != nil {
		t.Fatal(err)
	}
	got, err := discoverLibgnutls(42)
	if err != nil || len(got) != 2 || got[0] != "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3" {
		t.Errorf("got %v, %v", got, err)
	}
	if err := os.Remove(filepath.Join(pidDir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(pidDir, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = discoverLibgnutls(42)
	if err != nil || len(got) != 2 || got[0] != filepath.Join(pidDir, "root")+"/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3" {
		t.Errorf("in another root: got %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(pidDir, "maps"), []byte("7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0 [stack]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := discoverLibgnutls(42); err == nil || !strings.Contains(err.Error(), "process 42 maps no libgnutls.so") {
		t.Errorf("a process without libgnutls: %v", err)
	}
	if _, err := discoverLibgnutls(43); err == nil || !strings.Contains(err.Error(), "process 43") {
		t.Errorf("no such process: %v", err)
	}
}

func TestDiscoverFindsTheSystemLibrary(t *testing.T) {
	requireLibgnutls(t)
	found, err := discoverLibgnutls(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if sameFile(f, systemLibgnutls) {
			return
		}
	}
	t.Errorf("found %v, not %s", found, systemLibgnutls)
}
