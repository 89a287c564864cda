// Package bpf embeds the eBPF objects of the bash module, built from
// kern/bash_kern.c by `make bpf` (kern/bpf.mk) and committed so that a
// plain `go build` needs no clang.
package bpf
