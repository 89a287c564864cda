package output

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestParseFormat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Format
		wantErr bool
	}{
		{name: "text", in: "text", want: FormatText},
		{name: "json", in: "json", want: FormatJSON},
		{name: "protobuf", in: "protobuf", want: FormatProtobuf},
		{name: "empty", in: "", wantErr: true},
		{name: "capitals", in: "JSON", wantErr: true},
		{name: "unknown", in: "yaml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseFormat(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
	if _, err := NewEncoder("yaml", nil); err == nil {
		t.Error("NewEncoder(yaml) succeeded")
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		golden string
	}{
		{name: "text", format: FormatText, golden: "events.txt"},
		{name: "json", format: FormatJSON, golden: "events.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := NewEncoder(tt.format, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			evs := testEvents()
			for i := range evs {
				if got, err = enc.Append(got, &evs[i]); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
			}
		})
	}
}

// TestJSONDecodes checks that every line is JSON that gives back the
// event's payload.
func TestJSONDecodes(t *testing.T) {
	evs := testEvents()
	for i := range evs {
		ev := &evs[i]
		line := appendJSON(nil, ev)
		var got struct {
			Module     string            `json:"module"`
			Payload    *string           `json:"payload"`
			PayloadB64 *string           `json:"payload_b64"`
			PayloadLen int               `json:"payload_len"`
			Fields     map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, line)
		}
		var payload []byte
		switch {
		case got.Payload != nil && got.PayloadB64 != nil:
			t.Errorf("event %d: both payload and payload_b64", i)
		case got.Payload != nil:
			payload = []byte(*got.Payload)
		case got.PayloadB64 != nil:
			var err error
			if payload, err = base64.StdEncoding.DecodeString(*got.PayloadB64); err != nil {
				t.Errorf("event %d: payload_b64: %v", i, err)
			}
		}
		if !bytes.Equal(payload, ev.Payload) || got.PayloadLen != len(ev.Payload) {
			t.Errorf("event %d: payload %q (len %d), want %q", i, payload, got.PayloadLen, ev.Payload)
		}
		if got.Module != ev.Module || len(got.Fields) != len(ev.Fields) {
			t.Errorf("event %d: module %q, %d fields", i, got.Module, len(got.Fields))
		}
	}
}

func FuzzJSON(f *testing.F) {
	f.Add("bash", "ls -la\n", "k", "v")
	f.Add("c\x00\xff", "\x16\x03\x01", "\u2028", "\"\\")
	f.Fuzz(func(t *testing.T, comm, payload, key, value string) {
		ev := sdk.Event{Time: t0, Module: "m", Kind: "k", Comm: comm, Payload: []byte(payload),
			Fields: []sdk.Field{{Key: key, Value: value}}}
		line := appendJSON(nil, &ev)
		if !json.Valid(line) || bytes.Count(line, []byte{'\n'}) != 1 {
			t.Fatalf("not one JSON line: %q", line)
		}
		var got struct {
			Comm       string  `json:"comm"`
			Payload    *string `json:"payload"`
			PayloadB64 []byte  `json:"payload_b64"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(comm) && got.Comm != comm {
			t.Errorf("comm %q, want %q", got.Comm, comm)
		}
		p := got.PayloadB64
		if got.Payload != nil {
			p = []byte(*got.Payload)
		}
		if string(p) != payload {
			t.Errorf("payload %q, want %q", p, payload)
		}
	})
}

// FuzzText checks that text output is safe on a terminal: valid UTF-8
// without control characters other than newline and tab.
func FuzzText(f *testing.F) {
	f.Add("bash", "ls -la\n", "k", "v")
	f.Add("c\x00\xff", "a\r\nb\x1b[2J", "\u2028", "x:")
	f.Fuzz(func(t *testing.T, comm, payload, key, value string) {
		ev := sdk.Event{Time: t0, Module: "m", Kind: "k", Comm: comm, Payload: []byte(payload),
			Fields: []sdk.Field{{Key: key, Value: value}}}
		out := string(appendText(nil, &ev, nil))
		if !utf8.ValidString(out) || !strings.HasSuffix(out, "\n") {
			t.Fatalf("bad text: %q", out)
		}
		for _, r := range out {
			if r != '\n' && r != '\t' && (unicode.IsControl(r) || !unicode.IsGraphic(r) && r != ' ') {
				t.Fatalf("control character %U in %q", r, out)
			}
		}
	})
}

func benchmarkEncoder(b *testing.B, f Format) {
	enc, err := NewEncoder(f, nil)
	if err != nil {
		b.Fatal(err)
	}
	evs := testEvents()[:3]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			buf, err = enc.Append(buf[:0], &evs[i])
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkText(b *testing.B)     { benchmarkEncoder(b, FormatText) }
func BenchmarkJSON(b *testing.B)     { benchmarkEncoder(b, FormatJSON) }
func BenchmarkProtobuf(b *testing.B) { benchmarkEncoder(b, FormatProtobuf) }
