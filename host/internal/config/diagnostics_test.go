package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestWriteDiagnosticsGolden covers both stages and the plugin's own
// diagnostics, printed the way `ecaphost validate` prints them.
func TestWriteDiagnosticsGolden(t *testing.T) {
	const name = "testdata/diagnostics.hcl"
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := Parse(name, src)
	if f == nil {
		t.Fatalf("Parse: %s", diags.Error())
	}
	for i := range f.Modules {
		_, ds := f.Modules[i].DecodeConfig(sdk.Schema{Attributes: []sdk.Attribute{
			{Name: "mode", Type: sdk.TypeString, OneOf: []string{"text", "pcap"}},
			{Name: "libs", Type: sdk.TypeStringList},
		}})
		diags = append(diags, ds...)
		diags = append(diags, f.Modules[i].PluginDiags(sdk.Diagnostics{
			{Severity: sdk.SeverityWarning, Summary: "Old kernel", Detail: "line one\nline two"},
		})...)
	}
	diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No subject"})

	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string][]byte{name: src}, diags); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/diagnostics.golden"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, buf.String())
	}
}

func TestWriteDiagnosticsFirstLine(t *testing.T) {
	src := []byte("module \"bash\" {\n  pid = \"x\"\n}\n")
	_, diags := Parse("x.hcl", src)
	tests := []struct {
		name    string
		sources map[string][]byte
		diags   hcl.Diagnostics
		want    string
	}{
		{
			name:    "with source",
			sources: map[string][]byte{"x.hcl": src},
			diags:   diags,
			want: "x.hcl:2:9: error: Incorrect attribute value type; Inappropriate value for attribute \"pid\": a number is required.\n" +
				"  2 |   pid = \"x\"\n" +
				"    |         ^^^\n",
		},
		{
			name:  "without source",
			diags: diags,
			want:  "x.hcl:2:9: error: Incorrect attribute value type; Inappropriate value for attribute \"pid\": a number is required.\n",
		},
		{
			name:    "range outside the source",
			sources: map[string][]byte{"x.hcl": src},
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagWarning, Summary: "S",
				Subject: &hcl.Range{Filename: "x.hcl", Start: hcl.Pos{Line: 9, Column: 1, Byte: 900}, End: hcl.Pos{Line: 9, Column: 2, Byte: 901}},
			}},
			want: "x.hcl:9:1: warning: S\n",
		},
		{
			name:  "no subject",
			diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Summary", Detail: "detail"}},
			want:  "error: Summary; detail\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, tt.sources, tt.diags); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", buf.String(), tt.want)
			}
		})
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteDiagnosticsError(t *testing.T) {
	err := WriteDiagnostics(failingWriter{}, nil, hcl.Diagnostics{{Summary: "x"}})
	if !errors.Is(err, errWrite) {
		t.Errorf("err = %v, want %v", err, errWrite)
	}
	if err := WriteDiagnostics(failingWriter{}, nil, nil); err != nil {
		t.Errorf("no diagnostics: err = %v", err)
	}
}
