package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/hcl/v2"
)

// where lists diagnostics as "FILE:LINE:COL: Summary".
func where(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		s := d.Summary
		if d.Subject != nil {
			s = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary)
		}
		out = append(out, s)
	}
	return out
}

func TestParseDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "syntax error",
			src:  "module \"bash\" {\n  pid = \n}\n",
			want: []string{"t.hcl:2:9: Invalid expression"},
		},
		{
			name: "unknown top-level block",
			src:  "module \"bash\" {}\nmodules \"x\" {}\n",
			want: []string{"t.hcl:2:1: Unsupported block type"},
		},
		{
			name: "unknown top-level attribute",
			src:  "plugin_directory = \"/x\"\n",
			want: []string{"t.hcl:1:1: Unsupported argument"},
		},
		{
			name: "unknown priority",
			src:  "priority = \"low\"\n",
			want: []string{"t.hcl:1:12: Invalid attribute value"},
		},
		{
			name: "empty plugin_dir",
			src:  "plugin_dir = \"\"\n",
			want: []string{"t.hcl:1:14: Invalid attribute value"},
		},
		{
			name: "unknown attribute in module",
			src:  "module \"bash\" {\n  pid = 1\n  pidd = 1\n}\n",
			want: []string{"t.hcl:3:3: Unsupported argument"},
		},
		{
			name: "unknown block in module",
			src:  "module \"bash\" {\n  filter {}\n}\n",
			want: []string{"t.hcl:2:3: Unsupported block type"},
		},
		{
			name: "module without name",
			src:  "module {\n}\n",
			want: []string{"t.hcl:1:8: Missing name for module"},
		},
		{
			name: "invalid module name",
			src:  "module \"../bash\" {}\n",
			want: []string{"t.hcl:1:8: Invalid module name"},
		},
		{
			name: "pid of the wrong type",
			src:  "module \"bash\" {\n  pid = \"x\"\n}\n",
			want: []string{"t.hcl:2:9: Incorrect attribute value type"},
		},
		{
			name: "negative pid",
			src:  "module \"bash\" {\n  pid = -1\n}\n",
			want: []string{"t.hcl:2:9: Invalid attribute value"},
		},
		{
			name: "fractional pid",
			src:  "module \"bash\" {\n  pid = 1.5\n}\n",
			want: []string{"t.hcl:2:9: Invalid attribute value"},
		},
		{
			name: "uid beyond uint32",
			src:  "module \"bash\" {\n  uid = 4294967296\n}\n",
			want: []string{"t.hcl:2:9: Invalid attribute value"},
		},
		{
			name: "variables are not allowed",
			src:  "module \"bash\" {\n  uid = some_uid\n}\n",
			want: []string{"t.hcl:2:9: Variables not allowed"},
		},
		{
			name: "unknown function",
			src:  "module \"bash\" {\n  comm = getenv(\"X\")\n}\n",
			want: []string{"t.hcl:2:10: Call to unknown function"},
		},
		{
			name: "comm too long",
			src:  "module \"bash\" {\n  comm = \"sixteen-letters!\"\n}\n",
			want: []string{"t.hcl:2:10: Invalid attribute value"},
		},
		{
			name: "buffer_kib not a power of two",
			src:  "module \"bash\" {\n  buffer_kib = 12\n}\n",
			want: []string{"t.hcl:2:16: Invalid attribute value"},
		},
		{
			name: "buffer_kib below a page",
			src:  "module \"bash\" {\n  buffer_kib = 2\n}\n",
			want: []string{"t.hcl:2:16: Invalid attribute value"},
		},
		{
			name: "buffer_kib too large",
			src:  "module \"bash\" {\n  buffer_kib = 4194304\n}\n",
			want: []string{"t.hcl:2:16: Invalid attribute value"},
		},
		{
			name: "duplicate module",
			src:  "module \"bash\" {}\nmodule \"openssl\" {}\n  module \"bash\" {}\n",
			want: []string{"t.hcl:3:10: Duplicate module"},
		},
		{
			name: "duplicate config block",
			src:  "module \"bash\" {\n  config {}\n  config {}\n}\n",
			want: []string{"t.hcl:3:3: Duplicate config block"},
		},
		{
			name: "unknown output kind",
			src:  "output \"syslog\" {}\n",
			want: []string{"t.hcl:1:8: Unknown output kind"},
		},
		{
			name: "bad format",
			src:  "output \"stdout\" {\n  format = \"yaml\"\n}\n",
			want: []string{"t.hcl:2:12: Invalid attribute value"},
		},
		{
			name: "format of the wrong type",
			src:  "output \"stdout\" {\n  format = [\"json\"]\n}\n",
			want: []string{"t.hcl:2:12: Incorrect attribute value type"},
		},
		{
			name: "file output without path",
			src:  "output \"stdout\" {}\n\noutput \"file\" {\n  format = \"json\"\n}\n",
			want: []string{"t.hcl:3:1: Missing required argument"},
		},
		{
			name: "file output with empty path",
			src:  "output \"file\" {\n  path = \"\"\n}\n",
			want: []string{"t.hcl:2:10: Invalid attribute value"},
		},
		{
			name: "stdout output with path",
			src:  "output \"stdout\" {\n  path = \"/tmp/x\"\n}\n",
			want: []string{"t.hcl:2:3: Unsupported argument"},
		},
		{
			name: "unknown output attribute",
			src:  "output \"stdout\" {\n  fromat = \"json\"\n}\n",
			want: []string{"t.hcl:2:3: Unsupported argument"},
		},
		{
			name: "two stdout outputs",
			src:  "output \"stdout\" {}\noutput \"stdout\" {\n  format = \"json\"\n}\n",
			want: []string{"t.hcl:2:1: Duplicate output"},
		},
		{
			name: "two file outputs with one path",
			src:  "output \"file\" {\n  path = \"/tmp/a\"\n}\noutput \"file\" {\n  path = \"/tmp/../tmp/a\"\n}\n",
			want: []string{"t.hcl:4:1: Duplicate output"},
		},
		{
			name: "several problems at once",
			src:  "module \"bash\" {\n  pid = -1\n  uid = \"root\"\n}\nmodule \"bash\" {}\n",
			want: []string{
				"t.hcl:2:9: Invalid attribute value",
				"t.hcl:3:9: Incorrect attribute value type",
				"t.hcl:5:8: Duplicate module",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse("t.hcl", []byte(tt.src))
			if got := where(diags); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.want, diags.Error())
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Setenv("ECAPHOST_TEST_PLUGINS", "/srv/plugins")
	t.Setenv("ECAPHOST_TEST_EMPTY", "")
	exists := filepath.Join(t.TempDir(), "vmlinux.btf")
	if err := os.WriteFile(exists, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		src     string
		outputs []Output
		modules []Module
		dir     string
	}{
		{
			name:    "empty file gets a stdout text output",
			src:     "",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
		},
		{
			name:    "no output block gets a stdout text output",
			src:     "module \"bash\" {}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash"}},
		},
		{
			name:    "format defaults to text",
			src:     "output \"file\" {\n  path = \"/tmp/e.log\"\n}\n",
			outputs: []Output{{Kind: OutputFile, Path: "/tmp/e.log", Format: FormatText}},
		},
		{
			name:    "env returns the variable",
			src:     "plugin_dir = env(\"ECAPHOST_TEST_PLUGINS\")\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			dir:     "/srv/plugins",
		},
		{
			name:    "env of an unset variable is empty",
			src:     "module \"bash\" {\n  comm = env(\"ECAPHOST_TEST_UNSET_VARIABLE\")\n}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash"}},
		},
		{
			name: "env in a conditional",
			src: "module \"bash\" {\n" +
				"  comm = env(\"ECAPHOST_TEST_EMPTY\") == \"\" ? \"bash\" : \"zsh\"\n}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash", Common: sdk.Common{Comm: "bash"}}},
		},
		{
			name: "file_exists",
			src: fmt.Sprintf("module \"bash\" {\n"+
				"  btf_file = file_exists(%q) ? %[1]q : \"\"\n"+
				"  comm = file_exists(\"/nonexistent/ecaphost\") ? \"yes\" : \"no\"\n}\n", exists),
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash", Common: sdk.Common{BTFFile: exists, Comm: "no"}}},
		},
		{
			name:    "null is absent",
			src:     "module \"bash\" {\n  pid = null\n}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash"}},
		},
		{
			name: "largest values",
			src: "module \"bash\" {\n  pid = 4294967295\n  uid = 4294967295\n" +
				"  comm = \"fifteen-letters\"\n  buffer_kib = 2097152\n}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash", Common: sdk.Common{
				PID: 4294967295, UID: 4294967295, Comm: "fifteen-letters", BufferKiB: 2097152,
			}}},
		},
		{
			name:    "smallest buffer",
			src:     "module \"bash\" {\n  buffer_kib = 4\n}\n",
			outputs: []Output{{Kind: OutputStdout, Format: FormatText}},
			modules: []Module{{Name: "bash", Common: sdk.Common{BufferKiB: 4}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse("t.hcl", []byte(tt.src))
			if diags.HasErrors() {
				t.Fatalf("Parse: %s", diags.Error())
			}
			if f.Priority != PriorityBackground {
				t.Errorf("Priority = %q, want the default %q", f.Priority, PriorityBackground)
			}
			if f.PluginDir != tt.dir {
				t.Errorf("PluginDir = %q, want %q", f.PluginDir, tt.dir)
			}
			checkOutputs(t, f.Outputs, tt.outputs)
			checkModules(t, f.Modules, tt.modules)
		})
	}
}

func TestParseFull(t *testing.T) {
	src, err := os.ReadFile("testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := Parse("full.hcl", src)
	if len(diags) != 0 {
		t.Fatalf("Parse: %s", diags.Error())
	}
	if f.Filename != "full.hcl" || string(f.Source) != string(src) {
		t.Errorf("Filename, Source = %q, %d bytes", f.Filename, len(f.Source))
	}
	if f.PluginDir != "/opt/ecaphost/plugins" || f.PluginDirRange.Start.Line != 2 || f.PluginDirRange.Start.Column != 14 {
		t.Errorf("PluginDir = %q at %v", f.PluginDir, f.PluginDirRange)
	}
	if f.Priority != PriorityNormal {
		t.Errorf("Priority = %q, want %q", f.Priority, PriorityNormal)
	}
	checkOutputs(t, f.Outputs, []Output{
		{Kind: OutputStdout, Format: FormatText},
		{Kind: OutputFile, Path: "/var/log/ecaphost/events.jsonl", Format: FormatJSON},
	})
	if got := pos(f.Outputs[1].DeclRange); got != "full.hcl:8:1" {
		t.Errorf("second output at %s, want full.hcl:8:1", got)
	}
	checkModules(t, f.Modules, []Module{
		{Name: "bash", Common: sdk.Common{PID: 1234, UID: 1000, Comm: "bash", BTFFile: "/opt/btf/5.4.btf", BufferKiB: 1024}},
		{Name: "openssl"},
	})
	bash := f.Modules[0]
	if got := pos(bash.LabelRange); got != "full.hcl:13:8" {
		t.Errorf("LabelRange at %s, want full.hcl:13:8", got)
	}
	if got := pos(bash.DeclRange); got != "full.hcl:13:1" {
		t.Errorf("DeclRange at %s, want full.hcl:13:1", got)
	}
}

func TestDefault(t *testing.T) {
	f, diags := Parse(DefaultFilename, DefaultSource)
	if len(diags) != 0 {
		t.Fatalf("Parse: %s", diags.Error())
	}
	checkOutputs(t, f.Outputs, []Output{{Kind: OutputStdout, Format: FormatText}})
	checkModules(t, f.Modules, []Module{{Name: "bash"}, {Name: "openssl"}})
	for i := range f.Modules {
		cfg, diags := f.Modules[i].DecodeConfig(sdk.Schema{Attributes: []sdk.Attribute{
			{Name: "some_setting", Type: sdk.TypeString, Default: "x"},
		}})
		if len(diags) != 0 {
			t.Errorf("module %s: DecodeConfig: %s", f.Modules[i].Name, diags.Error())
		}
		if cfg.String("some_setting") != "x" {
			t.Errorf("module %s: config = %v, want the default", f.Modules[i].Name, cfg)
		}
	}
	if f.Modules[0].LabelRange.Filename != DefaultFilename {
		t.Errorf("Filename = %q, want %q", f.Modules[0].LabelRange.Filename, DefaultFilename)
	}
}

func checkOutputs(t *testing.T, got, want []Output) {
	t.Helper()
	type plain struct{ Kind, Path, Format string }
	var g, w []plain
	for _, o := range got {
		g = append(g, plain{o.Kind, o.Path, o.Format})
	}
	for _, o := range want {
		w = append(w, plain{o.Kind, o.Path, o.Format})
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("outputs:\ngot  %+v\nwant %+v", g, w)
	}
}

func checkModules(t *testing.T, got, want []Module) {
	t.Helper()
	type plain struct {
		Name   string
		Common sdk.Common
	}
	var g, w []plain
	for _, m := range got {
		g = append(g, plain{m.Name, m.Common})
	}
	for _, m := range want {
		w = append(w, plain{m.Name, m.Common})
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("modules:\ngot  %+v\nwant %+v", g, w)
	}
}
