// Command ecaphost runs eBPF capture modules as plugins and writes what
// they capture. See `ecaphost --help`.
package main

import (
	"os"

	"github.com/ecaphost/ecaphost/host/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
