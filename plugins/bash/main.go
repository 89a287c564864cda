// Command bash is the ecaphost plugin capturing bash commands; ecaphost
// launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/bash/bashmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(bashmod.New())) }
