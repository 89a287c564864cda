package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePlugin(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, Prefix+name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// privateDir is a temp dir that passes the trust check (t.TempDir's
// parents are fine, but its own mode may be looser on some systems).
func privateDir(t *testing.T) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFindOrder(t *testing.T) {
	a, b := privateDir(t), privateDir(t)
	writePlugin(t, b, "bash", 0o755)
	want := writePlugin(t, a, "bash", 0o755)
	p, err := Find("bash", []string{a, b})
	if err != nil || p.Path != want {
		t.Fatalf("Find = %+v, %v; want %s", p, err, want)
	}
	if _, err := Find("nope", []string{a, b}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ecaphost-plugin-nope") {
		t.Errorf("missing plugin: err = %v", err)
	}
	if _, err := Find("../x", []string{a}); err == nil {
		t.Errorf("a name with a slash was accepted")
	}
	all, err := All([]string{a, b, filepath.Join(a, "missing")})
	if err != nil || len(all) != 1 || all[0].Path != want {
		t.Errorf("All = %+v, %v", all, err)
	}
}

func TestCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership cases need root")
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		wantErr string
	}{
		{"private executable", func(t *testing.T, d string) string { return writePlugin(t, d, "ok", 0o755) }, ""},
		{"world-writable file", func(t *testing.T, d string) string { return writePlugin(t, d, "w", 0o777) }, "writable by group or others"},
		{"group-writable file", func(t *testing.T, d string) string { return writePlugin(t, d, "g", 0o775) }, "writable by group or others"},
		{"not executable", func(t *testing.T, d string) string { return writePlugin(t, d, "x", 0o644) }, "not executable"},
		{"world-writable directory", func(t *testing.T, d string) string {
			sub := filepath.Join(d, "open")
			if err := os.Mkdir(sub, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, 0o777); err != nil {
				t.Fatal(err)
			}
			return writePlugin(t, sub, "ok", 0o755)
		}, "open is writable by group or others"},
		{"owned by another user", func(t *testing.T, d string) string {
			p := writePlugin(t, d, "nobody", 0o755)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "owned by uid 65534"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.setup(t, privateDir(t))
			err := Check(Plugin{Name: "x", Path: p})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Check(%s) = %v, want ErrUntrusted containing %q", p, err, tc.wantErr)
			}
		})
	}
}

// TestSymlinkedPlugin: a plugin found through a symbolic link is run only
// when the link and the directory holding it pass the checks a plugin's
// own directory passes.
func TestSymlinkedPlugin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership cases need root")
	}
	real := writePlugin(t, privateDir(t), "bash", 0o755)
	for _, tc := range []struct {
		name    string
		mode    os.FileMode // of the directory holding the link
		linkUID int
		wantErr string
	}{
		{"in a private directory", 0o755, 0, ""},
		{"in a world-writable directory", 0o777, 0, "writable by group or others"},
		{"in a sticky world-writable directory", os.ModeSticky | 0o777, 0, "writable by group or others"},
		{"owned by another user", 0o755, 65534, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := privateDir(t)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, Prefix+"bash")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, tc.linkUID, tc.linkUID); err != nil {
				t.Fatal(err)
			}
			p, err := Find("bash", []string{dir})
			if err != nil || p.Path != real || p.Link != link {
				t.Fatalf("Find = %+v, %v; want %s through %s", p, err, real, link)
			}
			err = Check(p)
			if tc.wantErr == "" && err != nil {
				t.Errorf("Check: %v", err)
			}
			if tc.wantErr != "" && (!errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Check: %v, want ErrUntrusted containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestOpenHashesWhatItOpened: the checksum is that of the file as opened,
// even when the name is given another file afterwards.
func TestOpenHashesWhatItOpened(t *testing.T) {
	dir := privateDir(t)
	p := writePlugin(t, dir, "x", 0o755)
	b, err := Open(Plugin{Name: "x", Path: p})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Rename(p, p+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := b.SHA256()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Open(Plugin{Name: "x", Path: p + ".old"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	want, _ := again.SHA256()
	if sum != want {
		t.Errorf("SHA256 = %s, want %s (the file opened, not the one now at its name)", sum, want)
	}
}
