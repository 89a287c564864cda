package config

import (
	"reflect"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/hcl/v2"
)

var testSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "readline_binary", Type: sdk.TypeString, Default: "/bin/bash"},
	{Name: "mode", Type: sdk.TypeString, OneOf: []string{"text", "pcap"}, Default: "text"},
	{Name: "max_len", Type: sdk.TypeNumber, Default: int64(4096)},
	{Name: "hex", Type: sdk.TypeBool},
	{Name: "libs", Type: sdk.TypeStringList},
}}

var requiredSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "target", Type: sdk.TypeString, Required: true},
}}

// parseModule parses src and returns its only module.
func parseOneModule(t *testing.T, src string) *Module {
	t.Helper()
	f, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("Parse: %s", diags.Error())
	}
	if len(f.Modules) != 1 {
		t.Fatalf("got %d modules, want 1", len(f.Modules))
	}
	return &f.Modules[0]
}

func TestDecodeConfig(t *testing.T) {
	defaults := sdk.Config{
		"readline_binary": "/bin/bash", "mode": "text", "max_len": int64(4096),
		"hex": false, "libs": []string(nil),
	}
	with := func(k string, v any) sdk.Config {
		c := sdk.Config{}
		for dk, dv := range defaults {
			c[dk] = dv
		}
		c[k] = v
		return c
	}
	tests := []struct {
		name      string
		src       string
		schema    sdk.Schema
		want      sdk.Config // checked when wantDiags is empty
		wantDiags []string
	}{
		{
			name:   "no config block",
			src:    "module \"bash\" {}\n",
			schema: testSchema,
			want:   defaults,
		},
		{
			name:   "empty config block",
			src:    "module \"bash\" {\n  config {}\n}\n",
			schema: testSchema,
			want:   defaults,
		},
		{
			name: "every type",
			src: "module \"bash\" {\n  config {\n    readline_binary = \"/usr/bin/bash\"\n" +
				"    mode = \"pcap\"\n    max_len = -1\n    hex = true\n    libs = [\"a\", \"b\"]\n  }\n}\n",
			schema: testSchema,
			want: sdk.Config{
				"readline_binary": "/usr/bin/bash", "mode": "pcap", "max_len": int64(-1),
				"hex": true, "libs": []string{"a", "b"},
			},
		},
		{
			name:   "number converted from a string",
			src:    "module \"bash\" {\n  config {\n    max_len = \"12\"\n  }\n}\n",
			schema: testSchema,
			want:   with("max_len", int64(12)),
		},
		{
			name:   "null takes the default",
			src:    "module \"bash\" {\n  config {\n    mode = null\n  }\n}\n",
			schema: testSchema,
			want:   defaults,
		},
		{
			name:   "env in config",
			src:    "module \"bash\" {\n  config {\n    readline_binary = \"${env(\"ECAPHOST_TEST_PREFIX\")}/bin/bash\"\n  }\n}\n",
			schema: testSchema,
			want:   with("readline_binary", "/usr/local/bin/bash"),
		},
		{
			name:      "attribute unknown to the schema",
			src:       "module \"bash\" {\n  config {\n    readline = \"/bin/bash\"\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:5: Unsupported argument"},
		},
		{
			name:      "block in config",
			src:       "module \"bash\" {\n  config {\n    probe {}\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:5: Unsupported block type"},
		},
		{
			name:      "wrong type",
			src:       "module \"bash\" {\n  config {\n    max_len = \"many\"\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:15: Incorrect attribute value type"},
		},
		{
			name:      "fractional number",
			src:       "module \"bash\" {\n  config {\n    max_len = 0.5\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:15: Invalid attribute value"},
		},
		{
			name:      "list where a bool is expected",
			src:       "module \"bash\" {\n  config {\n    hex = [true]\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:11: Incorrect attribute value type"},
		},
		{
			name:      "null in a list",
			src:       "module \"bash\" {\n  config {\n    libs = [\"a\", null]\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:12: Invalid attribute value"},
		},
		{
			name:      "value outside OneOf",
			src:       "module \"bash\" {\n  config {\n    mode = \"fancy\"\n  }\n}\n",
			schema:    testSchema,
			wantDiags: []string{"t.hcl:3:12: Invalid attribute value"},
		},
		{
			name:      "missing required attribute",
			src:       "module \"bash\" {\n  pid = 1\n  config {\n  }\n}\n",
			schema:    requiredSchema,
			wantDiags: []string{"t.hcl:3:3: Missing required argument"},
		},
		{
			name:      "required attribute set to null",
			src:       "module \"bash\" {\n  config {\n    target = null\n  }\n}\n",
			schema:    requiredSchema,
			wantDiags: []string{"t.hcl:3:14: Missing required argument"},
		},
		{
			name:      "missing config block with a required attribute",
			src:       "\nmodule \"bash\" {}\n",
			schema:    requiredSchema,
			wantDiags: []string{"t.hcl:2:1: Missing required argument"},
		},
		{
			name:   "required attribute set",
			src:    "module \"bash\" {\n  config {\n    target = \"x\"\n  }\n}\n",
			schema: requiredSchema,
			want:   sdk.Config{"target": "x"},
		},
		{
			name:      "invalid schema",
			src:       "module \"bash\" {}\n",
			schema:    sdk.Schema{Attributes: []sdk.Attribute{{Name: "x", Type: sdk.TypeString, Default: 1}}},
			wantDiags: []string{"t.hcl:1:8: Invalid plugin schema"},
		},
		{
			name: "several problems",
			src: "module \"bash\" {\n  config {\n    mode = \"fancy\"\n    hex = \"maybe\"\n" +
				"    extra = 1\n  }\n}\n",
			schema: testSchema,
			wantDiags: []string{
				"t.hcl:5:5: Unsupported argument",
				"t.hcl:3:12: Invalid attribute value",
				"t.hcl:4:11: Incorrect attribute value type",
			},
		},
	}
	t.Setenv("ECAPHOST_TEST_PREFIX", "/usr/local")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseOneModule(t, tt.src)
			cfg, diags := m.DecodeConfig(tt.schema)
			if got := where(diags); !reflect.DeepEqual(got, tt.wantDiags) {
				t.Fatalf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.wantDiags, diags.Error())
			}
			if len(tt.wantDiags) > 0 {
				return
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("config:\ngot  %#v\nwant %#v", cfg, tt.want)
			}
			if ds := cfg.Check(tt.schema); len(ds) != 0 {
				t.Errorf("the decoded config fails sdk.Config.Check: %v", ds)
			}
		})
	}
}

func TestPluginDiags(t *testing.T) {
	const src = `module "bash" {
  btf_file = "/opt/x.btf"
  config {
    readline_binary = "/no/such/bash"
  }
}
`
	const noConfig = "\n\nmodule \"bash\" {\n}\n"
	tests := []struct {
		name     string
		src      string
		in       sdk.Diagnostic
		want     string
		severity hcl.DiagnosticSeverity
	}{
		{
			name: "config attribute",
			src:  src,
			in:   sdk.Errorf("readline_binary", "Binary not found", "no file %s", "/no/such/bash"),
			want: "t.hcl:4:23: Binary not found",
		},
		{
			name: "common attribute",
			src:  src,
			in:   sdk.Errorf("btf_file", "Invalid BTF", "not a BTF file"),
			want: "t.hcl:2:14: Invalid BTF",
		},
		{
			name: "attribute not in the file points at the config block",
			src:  src,
			in:   sdk.Errorf("mode", "Unsupported mode", "the default mode needs kernel 5.8"),
			want: "t.hcl:3:3: Unsupported mode",
		},
		{
			name: "attribute not in the file without config block",
			src:  noConfig,
			in:   sdk.Errorf("mode", "Unsupported mode", "the default mode needs kernel 5.8"),
			want: "t.hcl:3:1: Unsupported mode",
		},
		{
			name: "no attribute points at the module",
			src:  src,
			in:   sdk.Errorf("", "Kernel too old", "bash capture needs 4.18"),
			want: "t.hcl:1:1: Kernel too old",
		},
		{
			name:     "warning",
			src:      src,
			in:       sdk.Diagnostic{Severity: sdk.SeverityWarning, Attribute: "readline_binary", Summary: "Stripped binary"},
			want:     "t.hcl:4:23: Stripped binary",
			severity: hcl.DiagWarning,
		},
		{
			name: "no summary",
			src:  noConfig,
			in:   sdk.Diagnostic{Severity: sdk.SeverityError, Detail: "something"},
			want: "t.hcl:3:1: Invalid module settings",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseOneModule(t, tt.src)
			diags := m.PluginDiags(sdk.Diagnostics{tt.in})
			if got := where(diags); !reflect.DeepEqual(got, []string{tt.want}) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			want := tt.severity
			if want == 0 {
				want = hcl.DiagError
			}
			if diags[0].Severity != want {
				t.Errorf("severity = %v, want %v", diags[0].Severity, want)
			}
		})
	}
}

func TestLabelDiag(t *testing.T) {
	m := parseOneModule(t, "\n  module   \"nspr\" {}\n")
	d := m.LabelDiag("Plugin not found", "no ecaphost-plugin-nspr in /opt/ecaphost/plugins")
	if got := where(hcl.Diagnostics{d}); !reflect.DeepEqual(got, []string{"t.hcl:2:12: Plugin not found"}) {
		t.Errorf("got %q", got)
	}
	if d.Severity != hcl.DiagError || d.Detail == "" {
		t.Errorf("diagnostic = %+v", d)
	}
}
