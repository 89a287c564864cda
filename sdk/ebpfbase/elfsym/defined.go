package elfsym

import "debug/elf"

// DefinedFuncs returns which of names f defines as functions, with the
// rules of Defines, reading each symbol table once (a static binary such
// as node has a large one).
func DefinedFuncs(f *elf.File, names []string) map[string]bool {
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	out := map[string]bool{}
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if !wanted[s.Name] || s.Section == elf.SHN_UNDEF || s.Value == 0 {
				continue
			}
			switch elf.ST_TYPE(s.Info) {
			case elf.STT_FUNC, elf.STT_GNU_IFUNC:
				out[s.Name] = true
			}
		}
	}
	return out
}
