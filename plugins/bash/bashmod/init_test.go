package bashmod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "bash" || info.Version != "0.1.0" {
		t.Errorf("info %+v", info)
	}
	if err := info.Schema.Validate(); err != nil {
		t.Error(err)
	}
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		config       sdk.Config
		wantAttr     string
		wantDetail   string
		wantReadline string
	}{
		{name: "defaults", config: sdk.Config{}, wantReadline: "/bin/bash"},
		{name: "explicit readline binary", config: sdk.Config{AttrReadlineBinary: "/bin/bash"}, wantReadline: "/bin/bash"},
		{name: "bash missing", config: sdk.Config{AttrBashBinary: "/nonexistent/bash"}, wantAttr: AttrBashBinary, wantDetail: "does not exist"},
		{name: "bash not ELF", config: sdk.Config{AttrBashBinary: notELF}, wantAttr: AttrBashBinary, wantDetail: "not an ELF file"},
		{name: "bash is a directory", config: sdk.Config{AttrBashBinary: dir}, wantAttr: AttrBashBinary, wantDetail: "not a regular file"},
		{name: "bash without parse_command", config: sdk.Config{AttrBashBinary: "/bin/true"}, wantAttr: AttrBashBinary, wantDetail: "does not define parse_command"},
		{name: "readline binary without readline", config: sdk.Config{AttrReadlineBinary: "/bin/true"}, wantAttr: AttrReadlineBinary, wantDetail: "does not define readline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{Config: tt.config, CheckOnly: true}, nil)
			if tt.wantAttr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.readlinePath != tt.wantReadline {
					t.Errorf("readline binary %q, want %q", m.readlinePath, tt.wantReadline)
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
