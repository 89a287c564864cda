package elfsym

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNotELF is returned for a file that is not an ELF object.
	ErrNotELF = errors.New("not an ELF file")
	// ErrNoSymbol is returned when a binary does not define the symbol.
	ErrNoSymbol = errors.New("symbol not defined")
	// ErrNotFound is returned when no linked library defines the symbol.
	ErrNotFound = errors.New("not found")
)

// Open opens path as an ELF file. The error wraps fs.ErrNotExist for a
// missing file and ErrNotELF for a file that is not ELF.
func Open(path string) (*elf.File, error) {
	f, err := elf.Open(path)
	if err == nil {
		return f, nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Anything else comes from parsing: bad magic, truncated headers...
	return nil, fmt.Errorf("opening %s: %w (%v)", path, ErrNotELF, err)
}

// Defines reports whether f defines the function (or ifunc) symbol name in
// its symbol table or its dynamic symbol table.
func Defines(f *elf.File, name string) bool {
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if s.Name != name || s.Section == elf.SHN_UNDEF || s.Value == 0 {
				continue
			}
			switch elf.ST_TYPE(s.Info) {
			case elf.STT_FUNC, elf.STT_GNU_IFUNC:
				return true
			}
		}
	}
	return false
}

// Value returns the link-time address (st_value) of the defined symbol
// name, function or data object, from the symbol table or the dynamic one.
// A probe reads a global of a running process at load bias + Value, the
// bias being the probed function's run-time address less its own Value.
// The error wraps fs.ErrNotExist, ErrNotELF or ErrNoSymbol.
func Value(path, name string) (uint64, error) {
	f, err := Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if s.Name == name && s.Section != elf.SHN_UNDEF && s.Value != 0 {
				return s.Value, nil
			}
		}
	}
	return 0, fmt.Errorf("%s in %s: %w", name, path, ErrNoSymbol)
}

// CheckSymbol checks that path is an ELF file defining the function symbol.
// The error wraps fs.ErrNotExist, ErrNotELF or ErrNoSymbol.
func CheckSymbol(path, symbol string) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !Defines(f, symbol) {
		return fmt.Errorf("%s in %s: %w", symbol, path, ErrNoSymbol)
	}
	return nil
}

// libDirs are searched for DT_NEEDED libraries after DT_RUNPATH/DT_RPATH.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
}

// Needed returns the paths of the shared libraries path links (its
// DT_NEEDED entries), found in its DT_RUNPATH/DT_RPATH and the usual
// library directories, in link order. A library that cannot be found is
// left out: ld.so.conf and LD_LIBRARY_PATH are not read.
func Needed(path string) ([]string, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("reading DT_NEEDED of %s: %w", path, err)
	}
	var dirs []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(d, "$ORIGIN", filepath.Dir(path))
				d = strings.ReplaceAll(d, "${ORIGIN}", filepath.Dir(path))
				if d != "" {
					dirs = append(dirs, d)
				}
			}
		}
	}
	dirs = append(dirs, libDirs...)
	var out []string
	for _, n := range names {
		if strings.Contains(n, "/") {
			if fileExists(n) {
				out = append(out, n)
			}
			continue
		}
		for _, d := range dirs {
			if p := filepath.Join(d, n); fileExists(p) {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// FindDefining returns path when it defines symbol, otherwise the first
// library it links (see Needed) that does. The error wraps ErrNotFound when
// neither does.
func FindDefining(path, symbol string) (string, error) {
	f, err := Open(path)
	if err != nil {
		return "", err
	}
	ok := Defines(f, symbol)
	f.Close()
	if ok {
		return path, nil
	}
	libs, err := Needed(path)
	if err != nil {
		return "", err
	}
	for _, lib := range libs {
		lf, err := Open(lib)
		if err != nil {
			continue
		}
		ok := Defines(lf, symbol)
		lf.Close()
		if ok {
			return lib, nil
		}
	}
	return "", fmt.Errorf("%s in %s or the libraries it links (%s): %w",
		symbol, path, strings.Join(libs, ", "), ErrNotFound)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
