package lifecycle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweepSockDirs: the socket directories of a host no longer running
// go; those of this host, of a running process and without a pid stay.
func TestSweepSockDirs(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "plugin123"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self := os.Getpid()
	gone := mk(sockDirPrefix + strconv.Itoa(dead.Process.Pid) + "-111")
	keep := []string{
		mk(sockDirPrefix + strconv.Itoa(self) + "-222"),
		mk(sockDirPrefix + "1-333"), // init runs
		mk(sockDirPrefix + "444"),   // an older host's: no pid
		mk(sockDirPrefix + "x-555"), // not a pid
		mk("other-" + strconv.Itoa(dead.Process.Pid) + "-666"),
	}
	n, err := sweepSockDirs(dir, self)
	if err != nil || n != 1 {
		t.Errorf("sweepSockDirs = %d, %v; want 1, nil", n, err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("%s of a dead host still there: %v", gone, err)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
