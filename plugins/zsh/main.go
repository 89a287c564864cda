// Command zsh is the ecaphost plugin capturing zsh command lines; ecaphost
// launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/zsh/zshmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(zshmod.New())) }
