// Command postgres is the ecaphost plugin capturing the statements a
// PostgreSQL server executes; ecaphost launches it, it is not meant to be
// run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/postgres/pgmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(pgmod.New())) }
