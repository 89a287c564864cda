package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseOTLPDiagnostics(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		body   string
		want   []string
		detail string
	}{
		{"endpoint without port", `endpoint = "collector"`, []string{"t.hcl:2:14: Invalid attribute value"}, "host:port"},
		{"endpoint with a bad port", `endpoint = "collector:http"`, []string{"t.hcl:2:14: Invalid attribute value"}, "65535"},
		{"no endpoint", `insecure = true`, []string{"t.hcl:1:15: Missing required argument"}, "endpoint"},
		{"unknown protocol", "endpoint = \"a:4317\"\n  protocol = \"http/json\"", []string{"t.hcl:3:14: Invalid attribute value"}, "http/protobuf"},
		{"missing ca_file", "endpoint = \"a:4317\"\n  ca_file = \"/nonexistent/ca.pem\"", []string{"t.hcl:3:13: Invalid attribute value"}, "no such file"},
		{"insecure with a TLS file", "endpoint = \"a:4317\"\n  insecure = true\n  ca_file = \"" + ca + "\"", []string{"t.hcl:4:13: Invalid attribute value"}, "insecure"},
		{"cert without key", "endpoint = \"a:4317\"\n  cert_file = \"" + ca + "\"", []string{"t.hcl:3:15: Invalid attribute value"}, "key_file"},
		{"queue_mib of 0", "endpoint = \"a:4317\"\n  queue_mib = 0", []string{"t.hcl:3:15: Invalid attribute value"}, "between 1"},
		{"unknown attribute", "endpoint = \"a:4317\"\n  path = \"/x\"", []string{"t.hcl:3:3: Unsupported argument"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse("t.hcl", []byte("output \"otlp\" {\n  "+tt.body+"\n}\n"))
			if got := where(diags); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.want, diags.Error())
			}
			if !strings.Contains(diags.Error(), tt.detail) {
				t.Errorf("diagnostic %q does not say %q", diags.Error(), tt.detail)
			}
		})
	}
}

func TestParseOTLP(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `output "otlp" {
  endpoint  = "10.0.0.1:4318"
  protocol  = "http/protobuf"
  ca_file   = "` + ca + `"
  headers   = { "x-tenant" = "ops" }
  queue_mib = 8
}
output "otlp" {
  endpoint = "127.0.0.1:4317"
  insecure = true
}
`
	f, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	want := []*OTLP{
		{Endpoint: "10.0.0.1:4318", Protocol: ProtocolHTTP, CAFile: ca, Headers: map[string]string{"x-tenant": "ops"}, QueueMiB: 8},
		{Endpoint: "127.0.0.1:4317", Protocol: ProtocolGRPC, Insecure: true, QueueMiB: DefaultQueueMiB},
	}
	if len(f.Outputs) != 2 {
		t.Fatalf("outputs %+v", f.Outputs)
	}
	for i, o := range f.Outputs {
		if o.Kind != OutputOTLP || !reflect.DeepEqual(o.OTLP, want[i]) {
			t.Errorf("output %d: %+v %+v, want %+v", i, o, o.OTLP, want[i])
		}
	}
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
		listen     string
	}{
		{"loopback", `listen = "127.0.0.1:9464"`, nil, "127.0.0.1:9464"},
		{"localhost", `listen = "localhost:9464"`, nil, "localhost:9464"},
		{"all addresses without allow_remote", `listen = ":9464"`, []string{"t.hcl:2:12: Invalid attribute value"}, ""},
		{"remote without allow_remote", `listen = "10.1.2.3:9464"`, []string{"t.hcl:2:12: Invalid attribute value"}, ""},
		{"remote with allow_remote", "listen = \"0.0.0.0:9464\"\n  allow_remote = true", nil, "0.0.0.0:9464"},
		{"no port", `listen = "127.0.0.1"`, []string{"t.hcl:2:12: Invalid attribute value"}, ""},
		{"a host name", `listen = "metrics.example:9464"`, []string{"t.hcl:2:12: Invalid attribute value"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse("t.hcl", []byte("metrics {\n  "+tt.body+"\n}\n"))
			if got := where(diags); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.want, diags.Error())
			}
			if tt.listen != "" && (f.Metrics == nil || f.Metrics.Listen != tt.listen) {
				t.Errorf("metrics %+v, want listen %q", f.Metrics, tt.listen)
			}
		})
	}
	_, diags := Parse("t.hcl", []byte("metrics {\n  listen = \"127.0.0.1:1\"\n}\nmetrics {\n  listen = \"127.0.0.1:2\"\n}\n"))
	if got := where(diags); !reflect.DeepEqual(got, []string{"t.hcl:4:1: Duplicate metrics block"}) {
		t.Errorf("two metrics blocks: %q", got)
	}
}

func TestParseRotate(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
		rotate     *Rotate
	}{
		{"size and age", "max_mib = 100\n    max_age = \"24h\"\n    keep = 3", nil, &Rotate{MaxBytes: 100 << 20, MaxAge: 24 * time.Hour, Keep: 3}},
		{"default keep", "max_mib = 1", nil, &Rotate{MaxBytes: 1 << 20, Keep: DefaultKeep}},
		{"no limit", "keep = 3", []string{"t.hcl:3:3: Missing rotation limit"}, nil},
		{"bad age", `max_age = "1 day"`, []string{"t.hcl:4:15: Invalid attribute value"}, nil},
		{"short age", `max_age = "10s"`, []string{"t.hcl:4:15: Invalid attribute value"}, nil},
		{"keep 0", "max_mib = 1\n    keep = 0", []string{"t.hcl:5:12: Invalid attribute value"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse("t.hcl", []byte("output \"file\" {\n  path = \"/tmp/x\"\n  rotate {\n    "+tt.body+"\n  }\n}\n"))
			if got := where(diags); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.want, diags.Error())
			}
			if tt.rotate != nil && !reflect.DeepEqual(f.Outputs[0].Rotate, tt.rotate) {
				t.Errorf("rotate %+v, want %+v", f.Outputs[0].Rotate, tt.rotate)
			}
		})
	}
	_, diags := Parse("t.hcl", []byte("output \"stdout\" {\n  rotate {\n    max_mib = 1\n  }\n}\n"))
	if got := where(diags); !reflect.DeepEqual(got, []string{"t.hcl:2:3: Unsupported block type"}) {
		t.Errorf("rotate on stdout: %q", got)
	}
}
