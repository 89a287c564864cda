package ebpfbase

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// TracefsDirs are where cilium/ebpf looks for tracefs, which attaching a
// tracepoint needs (for its id).
var TracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// EnsureTracefs mounts tracefs at TracefsDirs[0] when neither place has it
// mounted (a minimal container or VM). A module whose probes include
// tracepoints calls it from Start, before Module.Start; logger records the
// mount.
func EnsureTracefs(logger hclog.Logger) error {
	for _, d := range TracefsDirs {
		if _, err := os.Stat(filepath.Join(d, "events")); err == nil {
			return nil
		}
	}
	err := unix.Mount("tracefs", TracefsDirs[0], "tracefs", 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting tracefs at %s, which tracepoints need: %w", TracefsDirs[0], err)
	}
	if logger != nil {
		logger.Info("mounted tracefs: tracepoints need it", "path", TracefsDirs[0])
	}
	return nil
}
