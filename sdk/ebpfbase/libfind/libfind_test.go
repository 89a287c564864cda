package libfind

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestSoname(t *testing.T) {
	m := Soname("libssl.so", "libnspr4.so")
	for base, want := range map[string]bool{
		"libssl.so": true, "libssl.so.3": true, "libssl.so.1.1": true, "libnspr4.so": true,
		"libssl3.so": false, "libssl.sox": false, "libnspr4.so.bak": true, "libcrypto.so.3": false, "": false,
	} {
		if got := m(base); got != want {
			t.Errorf("match(%q) = %v, want %v", base, got, want)
		}
	}
}

func TestInMaps(t *testing.T) {
	data, err := os.ReadFile("testdata/maps")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		match func(string) bool
		want  []string
	}{
		{"nspr", Soname("libnspr4.so"), []string{"/usr/lib/x86_64-linux-gnu/libnspr4.so", "/opt/my app/lib/libnspr4.so"}},
		{"openssl's libssl, not NSS's", Soname("libssl.so"), []string{"/usr/lib/x86_64-linux-gnu/libssl.so.3"}},
		{"NSS's libssl3", Soname("libssl3.so"), []string{"/usr/lib/x86_64-linux-gnu/libssl3.so"}},
		{"nothing", Soname("libgnutls.so"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InMaps(data, tt.match); !slices.Equal(got, tt.want) {
				t.Errorf("InMaps = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLdconfig(t *testing.T) {
	out := []byte(`1234 libs found in cache ` + "`/etc/ld.so.cache'" + `
	libssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so
	libnspr4.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libnspr4.so
	libnspr4.so (libc6) => /lib/i386-linux-gnu/libnspr4.so
	libnspr4.so (libc6,x86-64) => relative/libnspr4.so
	libplc4.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libplc4.so
garbage
`)
	want := []string{"/lib/x86_64-linux-gnu/libnspr4.so", "/lib/i386-linux-gnu/libnspr4.so"}
	if got := ParseLdconfig(out, []string{"libnspr4.so"}); !slices.Equal(got, want) {
		t.Errorf("ParseLdconfig = %q, want %q", got, want)
	}
}

// TestMapped reads a fake /proc.
func TestMapped(t *testing.T) {
	proc := t.TempDir()
	d := filepath.Join(proc, "10")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	maps := "7f0000000000-7f0000001000 r-xp 00000000 fd:01 42 /lib/libnspr4.so\n"
	if err := os.WriteFile(filepath.Join(d, "maps"), []byte(maps), 0o644); err != nil {
		t.Fatal(err)
	}
	// No root link: the process is taken to share this root.
	if got, err := Mapped(proc, 10, Soname("libnspr4.so")); err != nil || !slices.Equal(got, []string{"/lib/libnspr4.so"}) {
		t.Errorf("process 10: %q, %v", got, err)
	}
	if got, err := Mapped(proc, 10, Soname("libssl.so")); err != nil || len(got) != 0 {
		t.Errorf("process 10 has no libssl: %q, %v", got, err)
	}
	if _, err := Mapped(proc, 11, Soname("libnspr4.so")); err == nil {
		t.Error("a process that does not exist has mappings")
	}
	// Another root: the paths go through it.
	if err := os.Symlink(t.TempDir(), filepath.Join(d, "root")); err != nil {
		t.Fatal(err)
	}
	got, err := Mapped(proc, 10, Soname("libnspr4.so"))
	if want := filepath.Join(d, "root") + "/lib/libnspr4.so"; err != nil || !slices.Equal(got, []string{want}) {
		t.Errorf("process 10 in another root: %q, %v; want %s", got, err, want)
	}
	if Exe(proc, 10) != filepath.Join(d, "exe") {
		t.Errorf("Exe = %s", Exe(proc, 10))
	}
}

func TestRootOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/root"); err != nil {
		t.Skip("no /proc")
	}
	if r := Root("/proc", uint32(os.Getpid())); r != "" {
		t.Errorf("root of this process is %q, want \"\" (the same as ours)", r)
	}
}

func TestDistinct(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.so")
	if err := os.WriteFile(a, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(a, filepath.Join(dir, "b.so")); err != nil {
		t.Fatal(err)
	}
	got := Distinct([]string{a, filepath.Join(dir, "b.so"), "/nope/c.so", "/nope/c.so"})
	if want := []string{a, "/nope/c.so", "/nope/c.so"}; !slices.Equal(got, want) {
		t.Errorf("Distinct = %q, want %q", got, want)
	}
}

// TestLoader finds the C library this test links, as every system has it.
func TestLoader(t *testing.T) {
	got := Loader([]string{"libc.so.6"})
	if len(got) == 0 {
		t.Skip("no libc.so.6 in the loader cache or " + strconv.Itoa(len(Dirs)) + " usual directories (not glibc?)")
	}
	for i, p := range got {
		if !NativeELF(p) {
			t.Errorf("%s is not a native ELF file", p)
		}
		for _, q := range got[:i] {
			if sq, _ := os.Stat(q); sq != nil {
				if sp, _ := os.Stat(p); sp != nil && os.SameFile(sp, sq) {
					t.Errorf("%s and %s are the same file, listed twice", p, q)
				}
			}
		}
	}
	if got := Loader([]string{"libnothing-here.so.42"}); len(got) != 0 {
		t.Errorf("found %q", got)
	}
	if NativeELF("testdata/maps") {
		t.Error("a text file is a native ELF object")
	}
}
