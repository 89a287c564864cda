// Command gnutls is the ecaphost plugin capturing the plaintext of GnuTLS
// connections. Install it as ecaphost-plugin-gnutls in a plugin directory;
// ecaphost launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/examples/gnutls/gnutlsmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(gnutlsmod.New())) }
