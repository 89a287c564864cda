// Package bpf embeds the eBPF object of the gotls module, built from
// kern/gotls_kern.c (with kern/include/ecap.h and tls.h) by `make bpf`
// (kern/bpf.mk) and committed so that a plain `go build` needs no clang.
package bpf
