package ebpfbase

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// tracefsDirs are where cilium/ebpf looks for tracefs, which attaching a
// tracepoint needs (for its id).
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// ensureTracefs mounts tracefs at tracefsDirs[0] when neither place has it
// mounted (a minimal container or VM). Start calls it when a probe is a
// tracepoint; logger records the mount.
func ensureTracefs(logger hclog.Logger) error {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(filepath.Join(d, "events")); err == nil {
			return nil
		}
	}
	err := unix.Mount("tracefs", tracefsDirs[0], "tracefs", 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting tracefs at %s, which tracepoints need: %w", tracefsDirs[0], err)
	}
	if logger != nil {
		logger.Info("mounted tracefs: tracepoints need it", "path", tracefsDirs[0])
	}
	return nil
}
