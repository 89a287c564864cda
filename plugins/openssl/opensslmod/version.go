package opensslmod

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// versionText matches OPENSSL_VERSION_TEXT: "OpenSSL 3.0.19 27 Jan 2026",
// "OpenSSL 1.1.1w  11 Sep 2023" (two spaces in 1.1.1), with the suffix a
// fork or a vendor may add ("+quic", "-fips") and the "FIPS" some 1.1.1
// builds print before the date.
var versionText = regexp.MustCompile(`OpenSSL (\d{1,3}\.\d{1,3}\.\d{1,3}[a-z]{0,2})(\S*) {1,2}(?:FIPS {1,2})?\d{1,2} [A-Z][a-z]{2} \d{4}`)

// errNoVersion is wrapped when a binary holds no OpenSSL version.
var errNoVersion = errors.New("no OpenSSL version found")

// detected is the OpenSSL version of a probed binary and where it was read.
type detected struct {
	text   string // as found, e.g. "OpenSSL 3.0.19 27 Jan 2026", or from OpenSSL_version_num
	number string // "3.0.19"
	suffix string // what follows the number in text, e.g. "+quic"; "" for OpenSSL's own builds
	from   string // the file it was read from
}

// findVersionText returns the first OPENSSL_VERSION_TEXT in data.
func findVersionText(data []byte) (text, number, suffix string, ok bool) {
	m := versionText.FindSubmatchIndex(data)
	if m == nil {
		return "", "", "", false
	}
	return string(data[m[0]:m[1]]), string(data[m[2]:m[3]]), string(data[m[4]:m[5]]), true
}

// readOnlyData returns the read-only data of the ELF file path, where
// OPENSSL_VERSION_TEXT lives (.rodata), or the whole file when it has no
// such section.
func readOnlyData(path string) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	var out []byte
	for _, s := range f.Sections {
		if s.Name != ".rodata" || s.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(s.Open(), 64<<20))
		if err != nil {
			return nil, fmt.Errorf("reading .rodata of %s: %w", path, err)
		}
		out = append(out, data...)
	}
	if out == nil {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = data
	}
	return out, nil
}

// versionOf returns the OpenSSL version in path: its version text, or the
// value its OpenSSL_version_num returns.
func versionOf(path string) (detected, error) {
	data, err := readOnlyData(path)
	if err != nil {
		return detected{}, err
	}
	if text, number, suffix, ok := findVersionText(data); ok {
		return detected{text: text, number: number, suffix: suffix, from: path}, nil
	}
	if n, err := versionNum(path); err == nil {
		return detected{text: fmt.Sprintf("OpenSSL_version_num() = %#x", n), number: n.String(), from: path}, nil
	}
	return detected{}, fmt.Errorf("%s: %w", path, errNoVersion)
}

// versionNumber is what OpenSSL_version_num returns: 0xMNN00PP0 for 3.x,
// 0xMNNFFPPS for 1.x (PP the letter of 1.1.1w).
type versionNumber uint32

func (n versionNumber) String() string {
	major := int(n >> 28)
	if major >= 3 {
		return fmt.Sprintf("%d.%d.%d", major, (n>>20)&0xff, (n>>4)&0xff)
	}
	v := version{major: major, minor: int((n >> 20) & 0xff), patch: int((n >> 12) & 0xff), letter: int((n >> 4) & 0xff)}
	return v.String()
}

// versionNum reads the constant OpenSSL_version_num returns from its code
// (x86-64: an optional endbr64, then mov $imm32,%eax; ret).
func versionNum(path string) (versionNumber, error) {
	code, err := funcCode(path, "OpenSSL_version_num", 16)
	if err != nil {
		return 0, err
	}
	code = skipEndbr64(code)
	if len(code) >= 6 && code[0] == 0xb8 && code[5] == 0xc3 {
		return versionNumber(binary.LittleEndian.Uint32(code[1:5])), nil
	}
	return 0, fmt.Errorf("OpenSSL_version_num in %s is not mov $imm32,%%eax; ret", path)
}

func skipEndbr64(code []byte) []byte {
	if bytes.HasPrefix(code, []byte{0xf3, 0x0f, 0x1e, 0xfa}) {
		return code[4:]
	}
	return code
}

// funcCode returns the first n bytes of the code of the function symbol
// defined in path (x86-64 only: the caller decodes it).
func funcCode(path, symbol string, n int) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s is not x86-64", path)
	}
	addr, err := elfsym.Value(path, symbol)
	if err != nil {
		return nil, err
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || addr < p.Vaddr || addr+uint64(n) > p.Vaddr+p.Filesz {
			continue
		}
		buf := make([]byte, n)
		if _, err := p.ReadAt(buf, int64(addr-p.Vaddr)); err != nil {
			return nil, fmt.Errorf("reading %s in %s: %w", symbol, path, err)
		}
		return buf, nil
	}
	return nil, fmt.Errorf("%s in %s: not in an executable segment", symbol, path)
}

// libcryptoName tells libcrypto.so files.
var libcryptoName = libfind.Soname("libcrypto.so")

// libcryptoOf returns the libcrypto libssl at path links, most likely
// first: the one process pid maps (with a pid filter), the one beside
// libssl (how OpenSSL installs), then the one its DT_NEEDED entry resolves
// to.
func libcryptoOf(path string, pid uint32) []string {
	var out []string
	if pid != 0 {
		if mapped, err := libfind.Mapped(procDir, pid, libcryptoName); err == nil {
			out = append(out, mapped...)
		}
	}
	f, err := elf.Open(path)
	if err != nil {
		return out
	}
	needed, _ := f.ImportedLibraries()
	f.Close()
	for _, n := range needed {
		if libcryptoName(filepath.Base(n)) {
			out = append(out, filepath.Join(filepath.Dir(path), filepath.Base(n)))
		}
	}
	if libs, err := elfsym.Needed(path); err == nil {
		for _, l := range libs {
			if libcryptoName(filepath.Base(l)) {
				out = append(out, l)
			}
		}
	}
	return libfind.Distinct(existing(out))
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// detectVersion returns the OpenSSL version of the binary at path: its
// own version text (libssl.so.1.1 has one, and so does a program linking
// OpenSSL statically), else that of the libcrypto it links (libssl.so.3
// has none).
func detectVersion(path string, pid uint32) (detected, error) {
	d, err := versionOf(path)
	if err == nil || !errors.Is(err, errNoVersion) {
		return d, err
	}
	var tried []string
	for _, lc := range libcryptoOf(path, pid) {
		d, err := versionOf(lc)
		if err == nil {
			return d, nil
		}
		tried = append(tried, lc)
	}
	if len(tried) == 0 {
		return detected{}, fmt.Errorf("%s holds no OpenSSL version text and no libcrypto it links was found: %w", path, errNoVersion)
	}
	return detected{}, fmt.Errorf("neither %s nor %s hold an OpenSSL version text: %w", path, strings.Join(tried, ", "), errNoVersion)
}

// checkAccessors compares l with what the code of two accessors of libssl
// at path reads (x86-64): SSL_get_session (mov disp(%rdi),%rax: the
// session offset) and SSL_version (mov disp(%rdi),%eax: the version
// offset). It catches a build whose layout differs from its version's
// (vendor patches, other build options). An accessor whose code is not
// that single load (3.2+ checks the object type first; other compilers)
// is not checked; the returned names say what was.
func checkAccessors(path string, l layout) (checked []string, err error) {
	for _, a := range []struct {
		symbol string
		want   int32
		rex    bool // 64-bit load
	}{
		{"SSL_get_session", l.Session, true},
		{"SSL_version", l.Version, false},
	} {
		code, err := funcCode(path, a.symbol, 16)
		if err != nil {
			continue
		}
		disp, ok := loadFromRDI(skipEndbr64(code), a.rex)
		if !ok {
			continue
		}
		if disp != a.want {
			return checked, fmt.Errorf("%s in %s reads offset %#x, the layout says %#x: this build's layout differs from its version's", a.symbol, path, disp, a.want)
		}
		checked = append(checked, a.symbol)
	}
	return checked, nil
}

// loadFromRDI decodes mov disp(%rdi),%rax (rex) or mov disp(%rdi),%eax at
// the start of code: 48 8b 07 / 48 8b 47 d8 / 48 8b 87 d32, without 48
// for the 32-bit form.
func loadFromRDI(code []byte, rex bool) (int32, bool) {
	if rex {
		if len(code) < 1 || code[0] != 0x48 {
			return 0, false
		}
		code = code[1:]
	}
	if len(code) < 2 || code[0] != 0x8b {
		return 0, false
	}
	switch modrm := code[1]; modrm {
	case 0x07:
		return 0, true
	case 0x47:
		if len(code) < 3 {
			return 0, false
		}
		return int32(int8(code[2])), true
	case 0x87:
		if len(code) < 6 {
			return 0, false
		}
		return int32(binary.LittleEndian.Uint32(code[2:6])), true
	}
	return 0, false
}
