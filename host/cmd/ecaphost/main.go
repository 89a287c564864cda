// Command ecaphost runs eBPF capture modules as plugins and writes what
// they capture. See `ecaphost --help`.
package main

import (
	"os"
	"runtime/debug"

	"github.com/ecaphost/ecaphost/host/internal/cli"
)

func main() {
	// The host's live heap is small and bounded (queues of batches), but
	// it churns through every event: collecting at 4x the live heap
	// instead of 2x halves the GC's share of the CPU under load.
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
