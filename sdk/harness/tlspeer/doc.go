// Package tlspeer starts real TLS servers for the end-to-end tests of TLS
// capture modules: openssl s_server -WWW and NSS's selfserv, on 127.0.0.1
// with fresh self-signed certificates for localhost, killed when the test
// ends. A server that does not start fails the test, and its output is
// logged when the test failed.
//
//	port := tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"page.txt": marker}))
//	// ... a client of the traced library fetches https://127.0.0.1:port/page.txt ...
//
// It runs the programs of the machine (openssl, selfserv and certutil):
// check for them first with harness.RequirePrivileges, which skips the
// test without them, or fails it under ECAPHOST_E2E=1.
package tlspeer
