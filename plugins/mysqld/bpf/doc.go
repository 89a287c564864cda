// Package bpf embeds the eBPF object of the mysqld module, built from
// kern/mysqld_kern.c by `make bpf` (kern/bpf.mk) and committed so that a
// plain `go build` needs no clang.
package bpf
