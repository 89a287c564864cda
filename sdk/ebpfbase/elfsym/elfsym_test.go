package elfsym

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSymbol(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, symbol string
		wantErr            error
	}{
		{"defined in .dynsym", "/bin/bash", "readline", nil},
		{"libc function", libc(t), "malloc", nil},
		{"undefined import", "/bin/bash", "malloc", ErrNoSymbol},
		{"absent", "/bin/true", "execute_command", ErrNoSymbol},
		{"script", script, "main", ErrNotELF},
		{"empty file", empty, "main", ErrNotELF},
		{"missing file", filepath.Join(dir, "nope"), "main", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.path); err != nil && tt.wantErr != fs.ErrNotExist {
				t.Skipf("%s: %v", tt.path, err)
			}
			err := CheckSymbol(tt.path, tt.symbol)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
		})
	}
}

func libc(t *testing.T) string {
	libs, err := Needed("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range libs {
		if strings.Contains(filepath.Base(l), "libc.so") {
			return l
		}
	}
	t.Skip("libc of /bin/true not found")
	return ""
}

func TestFindDefining(t *testing.T) {
	if got, err := FindDefining("/bin/bash", "readline"); err != nil || got != "/bin/bash" {
		t.Errorf("readline of /bin/bash: %q, %v", got, err)
	}
	// bc links the system libreadline instead of embedding it, as some
	// distributions' bash does.
	if _, err := os.Stat("/usr/bin/bc"); err == nil {
		got, err := FindDefining("/usr/bin/bc", "readline")
		if err != nil || !strings.Contains(filepath.Base(got), "libreadline.so") {
			t.Errorf("readline of /usr/bin/bc: %q, %v; want its libreadline.so", got, err)
		}
	}
	if _, err := FindDefining("/bin/true", "readline"); !errors.Is(err, ErrNotFound) {
		t.Errorf("readline of /bin/true: %v, want ErrNotFound", err)
	}
}
