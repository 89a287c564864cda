// Package bpf embeds the eBPF objects of the postgres module, built from
// kern/postgres_kern.c by `make bpf` (kern/bpf.mk) and committed so that a
// plain `go build` needs no clang.
package bpf
