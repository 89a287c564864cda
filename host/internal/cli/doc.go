// Package cli is ecaphost's command line: run, validate, plugins, version.
// Main is the whole program behind a testable signature.
package cli
