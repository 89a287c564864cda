// Package bpf embeds the compiled object of kern/sdk/execwatch.c, built by
// `make bpf`.
package bpf

import _ "embed"

// ExecWatch is the CO-RE object of kern/sdk/execwatch.c.
//
//go:embed execwatch_core.o
var ExecWatch []byte
