// Command openssl is the ecaphost plugin capturing the plaintext of
// OpenSSL TLS connections; ecaphost launches it, it is not meant to be run
// by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/openssl/opensslmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(opensslmod.New())) }
