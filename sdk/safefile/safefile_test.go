package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// otherUID owns the files "another user" made; nobody on Debian.
const otherUID = 65534

// setup prepares one case in dir and returns the path to write.
type setup func(t *testing.T, dir string) string

func existing(mode os.FileMode, uid int) setup {
	return func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		if err := os.WriteFile(p, []byte("earlier\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			chown(t, p, uid)
		}
		return p
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.SkipOrFail(t, "needs root to give %s to uid %d", p, uid)
	}
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// inDir makes the file's directory with mode and owner, the file absent.
func inDir(mode os.FileMode, uid int) setup {
	return func(t *testing.T, dir string) string {
		d := filepath.Join(dir, "d")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			chown(t, d, uid)
		}
		return filepath.Join(d, "out")
	}
}

// target is a file a link points at, which must stay untouched.
func target(t *testing.T, dir string) string {
	p := filepath.Join(dir, "target")
	if err := os.WriteFile(p, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var cases = []struct {
	name   string
	setup  setup
	refuse string // part of the refusal; "" when accepted
}{
	{"new file", func(t *testing.T, dir string) string { return filepath.Join(dir, "out") }, ""},
	{"own file 0600", existing(0o600, -1), ""},
	{"own file readable by others is narrowed", existing(0o644, -1), ""},
	{"root file in a sticky root directory", func(t *testing.T, dir string) string {
		return inDir(os.ModeSticky|0o777, 0)(t, dir)
	}, ""},
	{"symlink to a file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		if err := os.Symlink(target(t, dir), p); err != nil {
			t.Fatal(err)
		}
		return p
	}, "symbolic link"},
	{"dangling symlink", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		if err := os.Symlink(filepath.Join(dir, "nothing"), p); err != nil {
			t.Fatal(err)
		}
		return p
	}, "symbolic link"},
	{"hard link", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		tp := target(t, dir)
		if err := os.Chmod(tp, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(tp, p); err != nil {
			t.Fatal(err)
		}
		return p
	}, "2 hard links"},
	{"FIFO", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}, "named pipe"},
	{"directory", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "out")
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}, "is a directory"},
	{"group-writable file", existing(0o660, -1), "writable by group or others (mode 0660)"},
	{"world-writable file", existing(0o666, -1), "writable by group or others"},
	{"file of another user", existing(0o600, otherUID), "owned by uid 65534"},
	{"world-writable directory", inDir(0o777, -1), "writable by others (mode 0777)"},
	{"sticky directory of another user", inDir(os.ModeSticky|0o777, otherUID), "not a sticky directory owned by root"},
	{"missing directory", func(t *testing.T, dir string) string { return filepath.Join(dir, "none", "out") }, "does not exist"},
	{"directory is a file", func(t *testing.T, dir string) string { return filepath.Join(existing(0o600, -1)(t, dir), "out") }, "not a directory"},
}

// TestAppend: each case is accepted (appended to, never truncated, mode
// 0600) or refused with an error naming the path and the reason, and a
// refused file (or a link's target) is left as it was.
func TestAppend(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.setup(t, dir)
			before := snapshot(dir)
			done := make(chan struct{})
			var f *os.File
			var err error
			go func() { f, err = safefile.Append(p); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Append(%s) blocked", p)
			}
			if tc.refuse != "" {
				if err == nil {
					f.Close()
					t.Fatalf("Append(%s) accepted; want a refusal saying %q", p, tc.refuse)
				}
				if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.refuse) {
					t.Errorf("Append(%s): %v; want the path and %q", p, err, tc.refuse)
				}
				if after := snapshot(dir); after != before {
					t.Errorf("a refused Append changed the directory:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Append(%s): %v", p, err)
			}
			if _, err := f.WriteString("new\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			b, _ := os.ReadFile(p)
			if !strings.HasSuffix(string(b), "new\n") || (strings.Contains(before, "earlier") && !strings.HasPrefix(string(b), "earlier\n")) {
				t.Errorf("%s holds %q: want what it held, then new", p, b)
			}
			if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
			}
		})
	}
}

// TestCheck: Check gives Append's verdict and changes nothing.
func TestCheck(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tc.setup(t, dir)
			before := snapshot(dir)
			err := safefile.Check(p)
			if tc.refuse == "" && err != nil {
				t.Errorf("Check(%s): %v, want nil", p, err)
			}
			if tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)) {
				t.Errorf("Check(%s): %v, want a refusal saying %q", p, err, tc.refuse)
			}
			if after := snapshot(dir); after != before {
				t.Errorf("Check changed the directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestRefusalsWrapErrUnsafe(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.Append(p); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Append of a symlink: %v, want ErrUnsafe", err)
	}
}

// TestReplace: the file is replaced whole with mode 0600; a symlink at the
// name is replaced, its target untouched; a world-writable directory is
// refused.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	tp := target(t, dir)
	p := filepath.Join(dir, "lock")
	if err := os.Symlink(tp, p); err != nil {
		t.Fatal(err)
	}
	if err := safefile.Replace(p, []byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := safefile.Replace(p, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two\n" {
		t.Errorf("%s holds %q, want two", p, b)
	}
	if st, _ := os.Lstat(p); !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a regular file 0600", p, st.Mode())
	}
	if b, _ := os.ReadFile(tp); string(b) != "precious\n" {
		t.Errorf("the symlink's target now holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries in the directory, want 2 (no temporary file left)", len(entries))
	}
	p = inDir(0o777, -1)(t, t.TempDir())
	if err := safefile.Replace(p, nil); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Replace in a world-writable directory: %v, want ErrUnsafe", err)
	}
}

// snapshot describes every name under dir: type, mode, size and content.
func snapshot(dir string) string {
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			b.WriteString(" " + string(c))
		}
		b.WriteString("; ")
		return nil
	})
	return b.String()
}
