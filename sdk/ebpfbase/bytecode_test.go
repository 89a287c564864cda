package ebpfbase

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseBytecode(t *testing.T) {
	dir := t.TempDir()
	btfFile := filepath.Join(dir, "vmlinux.btf")
	if err := os.WriteFile(btfFile, []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	core, nonCore := []byte("core"), []byte("noncore")
	both := &Spec{CoreObject: core, NonCoreObject: nonCore}
	coreOnly := &Spec{CoreObject: core}
	nonCoreOnly := &Spec{NonCoreObject: nonCore}

	tests := []struct {
		name        string
		spec        *Spec
		btfFile     string
		sysBTF      string
		mode        BytecodeMode
		wantCore    bool
		wantBTFFile string
		wantErr     error
		wantErrText string
	}{
		{name: "kernel BTF: CO-RE", spec: both, sysBTF: btfFile, wantCore: true},
		{name: "no kernel BTF: non-CO-RE", spec: both, sysBTF: missing, wantCore: false},
		{name: "kernel BTF is a directory: non-CO-RE", spec: both, sysBTF: dir, wantCore: false},
		{name: "no BTF, no non-CO-RE object", spec: coreOnly, sysBTF: missing, wantErr: ErrNoBTF, wantErrText: "set btf_file"},
		{name: "btf_file without kernel BTF: CO-RE with it", spec: coreOnly, btfFile: btfFile, sysBTF: missing, wantCore: true, wantBTFFile: btfFile},
		{name: "btf_file overrides kernel BTF", spec: both, btfFile: btfFile, sysBTF: btfFile, wantCore: true, wantBTFFile: btfFile},
		{name: "btf_file missing", spec: both, btfFile: missing, sysBTF: btfFile, wantErr: fs.ErrNotExist, wantErrText: "btf_file"},
		{name: "btf_file with only non-CO-RE object", spec: nonCoreOnly, btfFile: btfFile, sysBTF: missing, wantCore: false},
		{name: "kernel BTF with only non-CO-RE object", spec: nonCoreOnly, sysBTF: btfFile, wantCore: false},
		{name: "forced non-CO-RE", spec: both, sysBTF: btfFile, mode: BytecodeNonCORE, wantCore: false},
		{name: "forced non-CO-RE without object", spec: coreOnly, sysBTF: btfFile, mode: BytecodeNonCORE, wantErrText: "no non-CO-RE object"},
		{name: "forced CO-RE without BTF", spec: both, sysBTF: missing, mode: BytecodeCORE, wantErr: ErrNoBTF},
		{name: "forced CO-RE", spec: both, sysBTF: btfFile, mode: BytecodeCORE, wantCore: true},
		{name: "no object", spec: &Spec{}, sysBTF: btfFile, wantErrText: "no eBPF object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseBytecode(tt.spec, tt.btfFile, tt.sysBTF, tt.mode)
			if tt.wantErr != nil || tt.wantErrText != "" {
				if err == nil {
					t.Fatalf("chose %s, want an error", got.variant())
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want one wrapping %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErrText) {
					t.Errorf("error %q does not say %q", err, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.core != tt.wantCore || got.btfFile != tt.wantBTFFile {
				t.Errorf("chose core=%v btfFile=%q, want core=%v btfFile=%q", got.core, got.btfFile, tt.wantCore, tt.wantBTFFile)
			}
			want := nonCore
			if tt.wantCore {
				want = core
			}
			if string(got.object) != string(want) {
				t.Errorf("object %q, want %q", got.object, want)
			}
		})
	}
}
