package zshmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "zsh" || info.Version != Version {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
}

func TestInit(t *testing.T) {
	if _, err := os.Stat("/bin/zsh"); err != nil {
		harness.SkipOrFail(t, "zsh is not installed: %v", err)
	}
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		config     sdk.Config
		wantAttr   string
		wantDetail string
	}{
		{name: "defaults", config: sdk.Config{}},
		{name: "explicit", config: sdk.Config{AttrZshBinary: "/usr/bin/zsh"}},
		{name: "missing", config: sdk.Config{AttrZshBinary: "/nonexistent/zsh"}, wantAttr: AttrZshBinary, wantDetail: "does not exist"},
		{name: "empty", config: sdk.Config{AttrZshBinary: ""}, wantAttr: AttrZshBinary, wantDetail: "must name"},
		{name: "not ELF", config: sdk.Config{AttrZshBinary: notELF}, wantAttr: AttrZshBinary, wantDetail: "not an ELF file"},
		{name: "directory", config: sdk.Config{AttrZshBinary: dir}, wantAttr: AttrZshBinary, wantDetail: "not a regular file"},
		{name: "bash is not zsh", config: sdk.Config{AttrZshBinary: "/bin/bash"}, wantAttr: AttrZshBinary, wantDetail: "does not define hend: is it zsh?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, CheckOnly: true}, nil)
			if tt.wantAttr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range symbols {
					if v, _ := m.consts[s.constant].(uint64); v == 0 {
						t.Errorf("constant %s (%s) not set: %v", s.constant, s.name, m.consts)
					}
				}
				if n := m.consts["lastval_size"]; n != uint32(8) {
					t.Errorf("lastval_size %v, want 8 (zsh 5.9's zlong)", n)
				}
				return
			}
			var diags sdk.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("error %v, want diagnostics", err)
			}
			if diags[0].Attribute != tt.wantAttr || !strings.Contains(diags[0].Detail, tt.wantDetail) {
				t.Errorf("diagnostic %+v, want one on %s saying %q", diags[0], tt.wantAttr, tt.wantDetail)
			}
		})
	}
}

func TestSpecBeforeInit(t *testing.T) {
	if _, err := New().Spec(); err == nil {
		t.Error("Spec before Init succeeded")
	}
}
