// Package bpf embeds the eBPF objects of the zsh module, built from
// kern/zsh_kern.c by `make bpf` (kern/bpf.mk) and committed so that a
// plain `go build` needs no clang.
package bpf
