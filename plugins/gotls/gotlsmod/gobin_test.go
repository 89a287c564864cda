package gotlsmod

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"slices"
	"testing"
)

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in   string
		want release
		ok   bool
	}{
		{"go1.26.8", release{1, 26}, true},
		{"go1.27rc1", release{1, 27}, true},
		{"go1.17", release{1, 17}, true},
		{"go1.21.0-X:nocoverageredesign", release{1, 21}, true},
		{"devel go1.28-abcdef", release{}, false},
		{"go2", release{}, false},
		{"go1.x", release{}, false},
		{"", release{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRelease(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseRelease(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if r, ok := parseOverride("1.27"); !ok || r != (release{1, 27}) {
		t.Errorf("parseOverride(1.27) = %v, %v", r, ok)
	}
}

func TestLayoutTable(t *testing.T) {
	for _, r := range []release{{1, 17}, {1, 19}, {1, 26}, {1, 27}} {
		if _, ok := layoutFor(r); !ok {
			t.Errorf("no layout for %s", r)
		}
	}
	for _, r := range []release{{1, 16}, {1, 28}, {2, 0}} {
		if _, ok := layoutFor(r); ok {
			t.Errorf("a layout for %s, which the table does not cover", r)
		}
	}
}

func TestReturns(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want []uint64
		err  bool
	}{
		// mov rax, rbx; ret; int3; int3
		{"one ret then padding", []byte{0x48, 0x89, 0xd8, 0xc3, 0xcc, 0xcc}, []uint64{3}, false},
		// test rax, rax; je +1; ret; xor eax, eax; ret
		{"two rets", []byte{0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0x31, 0xc0, 0xc3}, []uint64{5, 8}, false},
		// mov eax, 0xc3c3c3c3: RET bytes inside an immediate are not RETs
		{"ret bytes in an immediate", []byte{0xb8, 0xc3, 0xc3, 0xc3, 0xc3}, nil, false},
		{"no code", nil, nil, false},
		{"cut instruction", []byte{0xc3, 0x48, 0x89}, nil, true},
		{"not an instruction in 64-bit mode", []byte{0x06}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := returns(tt.code)
			if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
				t.Errorf("returns = %v, %v; want %v (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestBodyStart(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want uint64
	}{
		// CMPQ SP, 0x10(R14); JBE rel32; PUSHQ BP
		{"small frame", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x7a, 0x03, 0x00, 0x00, 0x55}, 10},
		// LEAQ -0x48(SP), R12; CMPQ R12, 0x10(R14); JBE rel32; PUSHQ BP
		{"large frame", []byte{0x4c, 0x8d, 0x64, 0x24, 0xb8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x93, 0x07, 0x00, 0x00, 0x55}, 15},
		// PUSHQ BP; MOVQ SP, BP: no stack check (NOSPLIT)
		{"no stack check", []byte{0x55, 0x48, 0x89, 0xe5, 0xc3}, 0},
		// CMPQ SP, 0x18(R14); JBE: not the stack guard
		{"another comparison", []byte{0x49, 0x3b, 0x66, 0x18, 0x0f, 0x86, 0x7a, 0x03, 0x00, 0x00}, 0},
		{"cut", []byte{0x49, 0x3b}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bodyStart(tt.code); got != tt.want {
				t.Errorf("bodyStart = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestInspect reads the test program as this machine's Go builds it,
// plain, stripped and PIE, and as Go 1.19 and 1.27 build it plain and PIE
// (1.19 puts .gopclntab in .data.rel.ro.gopclntab there); and it refuses
// what is not a Go executable with crypto/tls. (host/e2e captures every
// toolchain in every variant.)
func TestInspect(t *testing.T) {
	for _, tc := range []toolchain{localGo, go119, go127} {
		for v := range variants {
			if tc.name != localGo.name && v == "stripped" {
				continue
			}
			t.Run(tc.name+"/"+v, func(t *testing.T) {
				b, err := inspect(build(t, tc, "gopeer", v))
				if err != nil {
					t.Fatal(err)
				}
				if b.Release.less(minRelease) || b.Write.Entry == 0 || b.Read.Entry == 0 || b.Close.Entry == 0 || b.KeyLog.Entry == 0 {
					t.Errorf("inspect = %+v", b)
				}
				// Every entry probe goes after the stack check.
				for _, f := range []goFunc{b.Write, b.Read, b.Close, b.KeyLog} {
					if code := readAt(t, b.Path, f.Entry-6, 6); !slices.Equal(code[:2], []byte{0x0f, 0x86}) {
						t.Errorf("the probe at %#x does not follow a JBE: % x", f.Entry, code)
					}
				}
				if len(b.Read.Returns) == 0 || b.Read.Returns[0] <= b.Read.Entry {
					t.Errorf("returns of Read %x, entry %#x", b.Read.Returns, b.Read.Entry)
				}
				if _, ok := layoutFor(b.Release); !ok {
					t.Errorf("no layout for %s", b.GoVersion)
				}
			})
		}
	}
	stripped := build(t, localGo, "gopeer", "stripped")
	for _, tt := range []struct {
		name, path string
		want       error
	}{
		{"missing", "/nonexistent/gopeer", fs.ErrNotExist},
		{"not Go", "/bin/ls", ErrNotGo},
		{"Go without crypto/tls", build(t, localGo, "notls", "stripped"), ErrNoTLS},
		{"before the register ABI", withVersion(t, stripped, "go1.16.8"), ErrUnsupported},
		{"not a version", withVersion(t, stripped, "gox.26.8"), ErrUnsupported},
		{"a directory", "/tmp", ErrUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := inspect(tt.path); !errors.Is(err, tt.want) {
				t.Errorf("inspect(%s): %v, want %v", tt.path, err, tt.want)
			}
		})
	}
}

// readAt reads n bytes of the file path at off.
func readAt(t *testing.T, path string, off uint64, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLayoutMatchesDWARF compares the layout table with the structures
// as the DWARF of executables built by each toolchain describes them.
func TestLayoutMatchesDWARF(t *testing.T) {
	for _, tc := range []toolchain{localGo, go119, go127} {
		t.Run(tc.name, func(t *testing.T) {
			path := build(t, tc, "gopeer", "plain")
			b, err := inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := layoutFor(b.Release)
			if !ok {
				t.Fatalf("no layout for %s", b.GoVersion)
			}
			ef, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			d, err := ef.DWARF()
			if err != nil {
				t.Fatal(err)
			}
			structs := dwarfStructs(t, d, "crypto/tls.Conn", "net.TCPConn", "net.conn", "net.netFD", "internal/poll.FD")
			off := func(st, field string) uint32 {
				s := structs[st]
				for _, f := range s.Field {
					if f.Name == field {
						return uint32(f.ByteOffset)
					}
				}
				t.Fatalf("%s has no field %s in %s's DWARF", st, field, b.GoVersion)
				return 0
			}
			got := layout{
				ConnData:  off("crypto/tls.Conn", "conn") + 8,
				TCPConnFD: off("net.TCPConn", "conn") + off("net.conn", "fd"),
				Sysfd:     off("net.netFD", "pfd") + off("internal/poll.FD", "Sysfd"),
				Family:    off("net.netFD", "family"),
			}
			if got != want {
				t.Errorf("%s: DWARF says %+v, the table %+v", b.GoVersion, got, want)
			}
			if off("net.netFD", "sotype") != got.Family+8 {
				t.Errorf("%s: sotype not 8 bytes after family", b.GoVersion)
			}
		})
	}
}

// dwarfStructs returns the struct types called names.
func dwarfStructs(t *testing.T, d *dwarf.Data, names ...string) map[string]*dwarf.StructType {
	out := map[string]*dwarf.StructType{}
	r := d.Reader()
	for len(out) < len(names) {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if !slices.Contains(names, name) || out[name] != nil {
			continue
		}
		typ, err := d.Type(e.Offset)
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := typ.(*dwarf.StructType); ok {
			out[name] = st
		}
	}
	for _, n := range names {
		if out[n] == nil {
			t.Fatalf("no struct %s in the DWARF", n)
		}
	}
	return out
}
