package opensslmod

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

func TestParseLdconfig(t *testing.T) {
	out := []byte(`1234 libs found in cache ` + "`/etc/ld.so.cache'" + `
	libssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so
	libssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3
	libssl.so.3 (libc6) => /lib/i386-linux-gnu/libssl.so.3
	libssl.so.1.1 (libc6,x86-64) => /opt/old/lib/libssl.so.1.1
	libssl.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so
	libcrypto.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcrypto.so.3
	libssl.so.3 (libc6,x86-64) => relative/libssl.so.3
garbage
`)
	want := []string{"/lib/x86_64-linux-gnu/libssl.so.3", "/lib/i386-linux-gnu/libssl.so.3", "/opt/old/lib/libssl.so.1.1"}
	if got := parseLdconfig(out); !slices.Equal(got, want) {
		t.Errorf("parseLdconfig = %q, want %q", got, want)
	}
}

func TestLibsslInMaps(t *testing.T) {
	maps, err := os.ReadFile("testdata/maps")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/opt/my app/lib/libssl.so.1.1"}
	if got := libfind.InMaps(maps, isLibssl); !slices.Equal(got, want) {
		t.Errorf("libfind.InMaps(maps, isLibssl) = %q, want %q", got, want)
	}
}

// TestLibsslOfProcess reads a fake /proc: the libssl a process maps, or
// its executable when it maps none.
func TestLibsslOfProcess(t *testing.T) {
	requireLibssl(t)
	old := procDir
	procDir = t.TempDir()
	defer func() { procDir = old }()
	mk := func(pid int, maps string, exe string) {
		d := filepath.Join(procDir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "maps"), []byte(maps), 0o644); err != nil {
			t.Fatal(err)
		}
		if exe != "" {
			if err := os.Symlink(exe, filepath.Join(d, "exe")); err != nil {
				t.Fatal(err)
			}
		}
		// No root link: the process is taken to share this root.
	}
	mk(10, "7f0000000000-7f0000001000 r-xp 00000000 fd:01 42 "+systemLibssl+"\n", "/bin/ls")
	mk(11, "", systemLibssl) // "static": its executable defines SSL_write
	mk(12, "", "/bin/ls")

	if got, err := libsslOfProcess(10); err != nil || !slices.Equal(got, []string{systemLibssl}) {
		t.Errorf("process 10: %q, %v", got, err)
	}
	if got, err := libsslOfProcess(11); err != nil || len(got) != 1 || !sameFile(got[0], systemLibssl) {
		t.Errorf("process 11: %q, %v", got, err)
	}
	if _, err := libsslOfProcess(12); err == nil {
		t.Error("process 12 maps no libssl and its executable has no OpenSSL, yet found one")
	}
	if _, err := libsslOfProcess(13); err == nil {
		t.Error("a process that does not exist has a libssl")
	}
}

func TestDiscoverFromLoader(t *testing.T) {
	requireLibssl(t)
	got, err := discoverLibssl(0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i, p := range got {
		found = found || sameFile(p, systemLibssl)
		for _, q := range got[:i] {
			if sameFile(p, q) {
				t.Errorf("%s and %s are the same file, listed twice", p, q)
			}
		}
	}
	if !found {
		t.Errorf("discovered %q, want %s among them", got, systemLibssl)
	}
}

func TestProcessRoot(t *testing.T) {
	if _, err := os.Stat("/proc/self/root"); err != nil {
		t.Skip("no /proc")
	}
	if r := libfind.Root(procDir, uint32(os.Getpid())); r != "" {
		t.Errorf("root of this process is %q, want \"\" (the same as ours)", r)
	}
}
