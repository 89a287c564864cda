package nsprmod

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNSPROfProcess reads a fake /proc: the library defining PR_Write that
// a process maps, or its executable when it maps none.
func TestNSPROfProcess(t *testing.T) {
	requireNSPR(t)
	old := procDir
	procDir = t.TempDir()
	defer func() { procDir = old }()
	mk := func(pid int, maps []string, exe string) {
		d := filepath.Join(procDir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for _, p := range maps {
			text.WriteString("7f0000000000-7f0000001000 r-xp 00000000 fd:01 42 " + p + "\n")
		}
		if err := os.WriteFile(filepath.Join(d, "maps"), []byte(text.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if exe != "" {
			if err := os.Symlink(exe, filepath.Join(d, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Folded: a libnss3.so defining PR_Write (the system libnspr4 renamed).
	folded := filepath.Join(t.TempDir(), "libnss3.so")
	if err := os.Symlink(systemNSPR, folded); err != nil {
		t.Fatal(err)
	}
	nss := filepath.Join(filepath.Dir(systemNSPR), "libnss3.so") // imports PR_Write: not NSPR
	mk(10, []string{nss, systemNSPR}, "/bin/ls")
	mk(11, []string{folded}, "/bin/ls")
	mk(12, nil, systemNSPR) // "static": its executable defines PR_Write
	mk(13, []string{nss}, "/bin/ls")

	if got, err := nsprOfProcess(10); err != nil || !slices.Equal(got, []string{systemNSPR}) {
		t.Errorf("process 10: %q, %v", got, err)
	}
	if got, err := nsprOfProcess(11); err != nil || !slices.Equal(got, []string{folded}) {
		t.Errorf("process 11: %q, %v", got, err)
	}
	if got, err := nsprOfProcess(12); err != nil || len(got) != 1 || !sameFile(got[0], systemNSPR) {
		t.Errorf("process 12: %q, %v", got, err)
	}
	if got, err := nsprOfProcess(13); err == nil {
		t.Errorf("process 13 maps only a libnss3 importing NSPR, yet found %q", got)
	}
	if _, err := nsprOfProcess(14); err == nil {
		t.Error("a process that does not exist has NSPR")
	}
}

func TestDiscoverFromLoader(t *testing.T) {
	requireNSPR(t)
	got, err := discoverNSPR(0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(p string) bool { return sameFile(p, systemNSPR) }) {
		t.Errorf("discovered %q, want %s among them", got, systemNSPR)
	}
}
