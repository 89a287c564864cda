// Command mysqld is the ecaphost plugin capturing the commands a MariaDB
// server executes; ecaphost launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/mysqld/mysqldmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(mysqldmod.New())) }
