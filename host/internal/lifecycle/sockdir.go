package lifecycle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// sockDirPrefix starts the name of every plugin's socket directory, which
// goes on with the host's pid: ecaphost-plugin-<pid>-<random>.
const sockDirPrefix = "ecaphost-plugin-"

// newSockDir makes a plugin's socket directory (0700) in the system's
// temporary directory. The first call of a host also removes the
// directories of hosts that no longer run: a host killed with SIGKILL
// cannot remove its own.
func newSockDir(logger hclog.Logger) (string, error) {
	sweepOnce.Do(func() {
		if n, err := sweepSockDirs(os.TempDir(), os.Getpid()); n > 0 || err != nil {
			logger.Debug("removed the socket directories of hosts no longer running", "count", n, "error", err)
		}
	})
	return os.MkdirTemp("", sockDirPrefix+strconv.Itoa(os.Getpid())+"-")
}

var sweepOnce sync.Once

// sweepSockDirs removes the socket directories in dir whose host pid is
// neither self nor a running process, and returns how many it removed.
// Directories without a pid in their name (older hosts), and those of a
// pid it cannot check, are left alone.
func sweepSockDirs(dir string, self int) (int, error) {
	matches, err := filepath.Glob(filepath.Join(dir, sockDirPrefix+"*-*"))
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), sockDirPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == self {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // running, or not ours to ask about
		}
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", m, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
