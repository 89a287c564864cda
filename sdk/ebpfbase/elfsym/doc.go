// Package elfsym answers the questions a module asks about a binary before
// it attaches uprobes to it: is this file an ELF object, does it define a
// function symbol, which shared libraries does it link and where are they.
//
// Modules call it from Init to turn a bad path setting into a diagnostic
// that names the setting; ebpfbase calls it from Start to refuse a probe
// whose symbol is missing with an error naming the symbol and binary,
// instead of letting the attach fail obscurely. It reads files only: it
// loads nothing into the kernel.
package elfsym
