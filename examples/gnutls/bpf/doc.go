// Package bpf embeds the eBPF object of the gnutls module, built from
// kern/gnutls_kern.c (with ecaphost's kern/include/ecap.h and tls.h) by
// `make bpf` and committed so that a plain `go build` needs no clang.
package bpf
