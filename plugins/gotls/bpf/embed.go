package bpf

import _ "embed"

// Core is the CO-RE object: ring buffer output, for kernels with BTF. There
// is no non-CO-RE object: finding a record's connection reads kernel
// structs (see kern/include/tls.h), so kernels without BTF need the
// btf_file setting.
//
//go:embed gotls_kern_core.o
var Core []byte
