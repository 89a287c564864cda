// Command ecaphost-plugin-gotls is the ecaphost plugin capturing the
// plaintext and the TLS keys of Go programs (crypto/tls); ecaphost
// launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/gotls/gotlsmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(gotlsmod.New())) }
