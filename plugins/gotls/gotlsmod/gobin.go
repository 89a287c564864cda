package gotlsmod

import (
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// The functions of crypto/tls the probes attach to, as .gopclntab names them.
const (
	symWrite  = "crypto/tls.(*Conn).Write"
	symRead   = "crypto/tls.(*Conn).Read"
	symClose  = "crypto/tls.(*Conn).Close"
	symKeyLog = "crypto/tls.(*Config).writeKeyLog"
)

// Errors of inspect, for Init's diagnostics (errors.Is).
var (
	// ErrNotGo: the file carries no Go build information.
	ErrNotGo = errors.New("not a Go executable")
	// ErrNoTLS: a Go executable without crypto/tls.(*Conn).Write and Read.
	ErrNoTLS = errors.New("does not link crypto/tls")
	// ErrUnsupported: a Go executable the module cannot probe (another
	// architecture, a release before the register ABI, no readable
	// .gopclntab, code that does not decode).
	ErrUnsupported = errors.New("unsupported Go executable")
)

// goFunc is one function of a Go executable, in file offsets (what a
// uprobe is attached at).
type goFunc struct {
	Entry   uint64   // file offset of the first instruction
	Returns []uint64 // file offsets of its RET instructions (read function only)
}

// goBinary is what inspect learnt about a Go executable.
type goBinary struct {
	Path      string
	GoVersion string  // as the build information says: "go1.26.8"
	Release   release // parsed from GoVersion
	Write     goFunc
	Read      goFunc
	Close     goFunc // Entry 0: not found
	KeyLog    goFunc // Entry 0: not found (writeKeyLog inlined or dropped)
}

// release is a Go release, major.minor ("go1.26.8" is {1, 26}).
type release struct{ Major, Minor int }

func (r release) String() string { return fmt.Sprintf("go%d.%d", r.Major, r.Minor) }

func (r release) less(o release) bool {
	return r.Major < o.Major || (r.Major == o.Major && r.Minor < o.Minor)
}

// parseRelease parses the major and minor numbers of a Go version as the
// build information gives it: "go1.26.8", "go1.27rc1", "go1.21.0-X:nocoverageredesign".
func parseRelease(v string) (release, bool) {
	s, ok := strings.CutPrefix(v, "go")
	if !ok {
		return release{}, false
	}
	major, rest, ok := strings.Cut(s, ".")
	if !ok {
		return release{}, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || end == 0 {
		return release{}, false
	}
	return release{ma, mi}, true
}

// minRelease is the first release with the register ABI on amd64 (Go
// 1.17): arguments and results in registers, the goroutine in R14.
var minRelease = release{1, 17}

// maxFuncBytes bounds the code decoded for one function.
const maxFuncBytes = 1 << 20

// inspect reads the Go executable at path: its Go release (from the build
// information), and from .gopclntab, which stripped executables keep, the
// probed functions of crypto/tls with, for Read, the file offsets of its
// return instructions. It reads the file through one descriptor.
func inspect(path string) (*goBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrUnsupported)
	}
	return inspectFile(path, f)
}

// inspectFile is inspect on an open file.
func inspectFile(path string, r io.ReaderAt) (*goBinary, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF file: %w", path, ErrNotGo)
	}
	info, err := buildinfo.Read(r)
	if err != nil {
		return nil, fmt.Errorf("%s has no Go build information (%v): %w", path, err, ErrNotGo)
	}
	b := &goBinary{Path: path, GoVersion: info.GoVersion}
	rel, ok := parseRelease(info.GoVersion)
	if !ok {
		return b, fmt.Errorf("%s was built by Go %q, a version the module cannot read: %w", path, info.GoVersion, ErrUnsupported)
	}
	b.Release = rel
	if ef.Machine != elf.EM_X86_64 {
		return b, fmt.Errorf("%s is a %s executable; the module probes x86-64 only: %w", path, ef.Machine, ErrUnsupported)
	}
	if rel.less(minRelease) {
		return b, fmt.Errorf("%s was built by %s, before Go 1.17's register ABI, which the probes need: %w", path, info.GoVersion, ErrUnsupported)
	}
	tab, err := symtab(ef)
	if err != nil {
		return b, fmt.Errorf("reading .gopclntab of %s: %v: %w", path, err, ErrUnsupported)
	}
	write, read := tab.LookupFunc(symWrite), tab.LookupFunc(symRead)
	if write == nil || read == nil {
		return b, fmt.Errorf("%s (%s) has no %s and %s in .gopclntab: %w", path, info.GoVersion, symWrite, symRead, ErrNoTLS)
	}
	if b.Write, err = funcAt(ef, write, false); err != nil {
		return b, err
	}
	if b.Read, err = funcAt(ef, read, true); err != nil {
		return b, err
	}
	if len(b.Read.Returns) == 0 {
		return b, fmt.Errorf("no return instruction found in %s of %s: %w", symRead, path, ErrUnsupported)
	}
	if fn := tab.LookupFunc(symClose); fn != nil {
		if b.Close, err = funcAt(ef, fn, false); err != nil {
			return b, err
		}
	}
	if fn := tab.LookupFunc(symKeyLog); fn != nil {
		if b.KeyLog, err = funcAt(ef, fn, false); err != nil {
			return b, err
		}
	}
	return b, nil
}

// symtab parses the executable's .gopclntab (.data.rel.ro.gopclntab in
// PIE builds of some releases).
func symtab(ef *elf.File) (*gosym.Table, error) {
	text := ef.Section(".text")
	if text == nil {
		return nil, errors.New("no .text section")
	}
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := ef.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			data, err := s.Data()
			if err != nil {
				return nil, err
			}
			return gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
		}
	}
	return nil, errors.New("no .gopclntab section")
}

// funcAt returns where fn's body starts, as a file offset (see
// bodyStart) and, with rets, the file offsets of the RET instructions of
// its code [Entry, End).
func funcAt(ef *elf.File, fn *gosym.Func, rets bool) (goFunc, error) {
	prog := execSegment(ef, fn.Entry)
	if prog == nil || fn.End <= fn.Entry || fn.End > prog.Vaddr+prog.Filesz {
		return goFunc{}, fmt.Errorf("%s at %#x..%#x is not in an executable segment: %w", fn.Name, fn.Entry, fn.End, ErrUnsupported)
	}
	n := fn.End - fn.Entry
	if n > maxFuncBytes {
		return goFunc{}, fmt.Errorf("%s is %d bytes long, more than the %d decoded: %w", fn.Name, n, maxFuncBytes, ErrUnsupported)
	}
	code := make([]byte, n)
	if _, err := prog.ReadAt(code, int64(fn.Entry-prog.Vaddr)); err != nil {
		return goFunc{}, fmt.Errorf("reading the code of %s: %w", fn.Name, err)
	}
	entry := fn.Entry - prog.Vaddr + prog.Off
	gf := goFunc{Entry: entry + bodyStart(code)}
	if !rets {
		return gf, nil
	}
	r, err := returns(code)
	if err != nil {
		return goFunc{}, fmt.Errorf("decoding %s at %#x: %v: %w", fn.Name, fn.Entry, err, ErrUnsupported)
	}
	for _, o := range r {
		gf.Returns = append(gf.Returns, entry+o)
	}
	return gf, nil
}

// maxPrologue is how many instructions bodyStart looks at.
const maxPrologue = 4

// bodyStart returns the offset in code, a Go function's, of the first
// instruction after its stack check: `CMPQ SP, 16(R14)` (or `LEAQ
// -n(SP), R12; CMPQ R12, 16(R14)`) and the JBE to the code calling
// runtime.morestack, which grows the goroutine's stack and then jumps back
// to the function's first instruction. A probe there would fire twice for
// one call (a write captured twice, a read entered twice); after the check
// it fires once, with the arguments still in their registers. 0 when the
// function has no stack check (or it does not decode).
func bodyStart(code []byte) uint64 {
	pc, cmp := 0, false
	for range maxPrologue {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Op == 0 {
			return 0
		}
		pc += inst.Len
		switch {
		case inst.Op == x86asm.CMP:
			m, ok := inst.Args[1].(x86asm.Mem)
			cmp = ok && m.Base == x86asm.R14 && m.Disp == 16
		case inst.Op == x86asm.JBE && cmp:
			return uint64(pc)
		case inst.Op != x86asm.LEA:
			return 0
		}
	}
	return 0
}

// returns decodes x86-64 code from its first byte to its end and returns
// the offsets of its RET instructions. Go emits no data among a
// function's instructions, so a linear sweep sees every instruction; the
// INT3 padding after the last one decodes too.
func returns(code []byte) ([]uint64, error) {
	var out []uint64
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err == nil && inst.Op == 0 {
			// x86asm returns a lone prefix for an instruction cut short.
			err = errors.New("truncated instruction")
		}
		if err != nil {
			return nil, fmt.Errorf("at +%#x: %w", pc, err)
		}
		if inst.Op == x86asm.RET {
			out = append(out, uint64(pc))
		}
		pc += inst.Len
	}
	return out, nil
}

// execSegment returns the executable PT_LOAD segment holding addr.
func execSegment(ef *elf.File, addr uint64) *elf.Prog {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return p
		}
	}
	return nil
}
