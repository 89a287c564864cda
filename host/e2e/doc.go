// Package e2e holds ecaphost's end-to-end tests: they run the built
// bin/ecaphost and plugins (make build) as root against real programs
// (an interactive bash on a pseudo-terminal, curl, openssl s_server) and
// read what lands in the outputs.
//
// Without root, BPF or a program they drive, the tests skip; with
// ECAPHOST_E2E=1 (set by CI) they fail instead, so a green CI run means
// the probes really ran.
package e2e
