// Command notls is a Go program without crypto/tls, which the gotls
// module refuses.
package main

import "fmt"

func main() { fmt.Println("no TLS here") }
