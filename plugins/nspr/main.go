// Command ecaphost-plugin-nspr is the ecaphost plugin capturing the
// plaintext of NSS TLS connections where it passes through NSPR; ecaphost
// launches it, it is not meant to be run by hand.
package main

import (
	"github.com/ecaphost/ecaphost/plugins/nspr/nsprmod"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

func main() { sdk.Serve(ebpfbase.New(nsprmod.New())) }
