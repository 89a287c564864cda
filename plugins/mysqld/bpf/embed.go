package bpf

import _ "embed"

// Core is the CO-RE object: ring buffer output and bpf_loop, for kernels
// with BTF (Linux 5.17 or later). There is no non-CO-RE object: a
// statement's text is sent in a loop of chunks, which needs bpf_loop.
//
//go:embed mysqld_kern_core.o
var Core []byte
