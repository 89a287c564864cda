package bpf

import _ "embed"

// Core is the CO-RE object: ring buffer output, for kernels with BTF.
//
//go:embed postgres_kern_core.o
var Core []byte

// NonCore is the non-CO-RE object: perf event array output, no vmlinux.h,
// for kernels without BTF (or ring buffers).
//
//go:embed postgres_kern_noncore.o
var NonCore []byte
