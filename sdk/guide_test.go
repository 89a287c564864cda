package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// guidePath is the module author's guide, relative to this package.
const guidePath = "../docs/writing-a-module.md"

// snippetMarker names the file the fenced block after it belongs to.
var snippetMarker = regexp.MustCompile(`^<!-- snippet: (\S+) -->$`)

// snippet is one fenced block of the guide and the file it belongs to.
type snippet struct {
	file string
	line int // of the opening fence
	lang string
	text string
}

// parseGuide returns the marked snippets of a guide. A ```go block without
// a marker is an error: every Go snippet must be compiled.
func parseGuide(data []byte) ([]snippet, error) {
	var out []snippet
	var cur *snippet
	pending := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				out = append(out, *cur)
				cur = nil
				continue
			}
			cur.text += line + "\n"
			continue
		}
		if m := snippetMarker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			pending = m[1]
			continue
		}
		if strings.HasPrefix(line, "```") {
			lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
			if pending == "" {
				if lang == "go" {
					return nil, fmt.Errorf("line %d: a go block without a <!-- snippet: FILE --> marker", n)
				}
				// Not compiled (shell, HCL, output): skip to its end.
				for sc.Scan() {
					n++
					if strings.TrimSpace(sc.Text()) == "```" {
						break
					}
				}
				continue
			}
			file := path.Clean(pending)
			if path.IsAbs(file) || strings.HasPrefix(file, "..") {
				return nil, fmt.Errorf("line %d: snippet file %q is outside the module", n, pending)
			}
			cur = &snippet{file: file, line: n, lang: lang}
			pending = ""
			continue
		}
		if pending != "" && strings.TrimSpace(line) != "" {
			return nil, fmt.Errorf("line %d: the marker for %s is not followed by a fenced block", n, pending)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: snippet %s is not closed", cur.line, cur.file)
	}
	return out, sc.Err()
}

// TestGuideSnippets makes sure docs/writing-a-module.md cannot rot: its
// snippets are written out as the module they describe, against this
// checkout of the SDK (GOWORK=off, a replace, -mod=mod), then go build and
// go vet run on it. When clang-16 is installed the guide's Makefile builds
// its eBPF C and go test runs the guide's tests, privileged ones included
// (they skip without root, and fail under ECAPHOST_E2E=1, as the guide
// says); otherwise the embedded object is an empty placeholder.
func TestGuideSnippets(t *testing.T) {
	data, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	snippets, err := parseGuide(data)
	if err != nil {
		t.Fatalf("%s: %v", guidePath, err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]bool{}
	var goFiles []string
	for _, s := range snippets {
		if files[s.file] {
			t.Fatalf("%s:%d: a second snippet of %s", guidePath, s.line, s.file)
		}
		files[s.file] = true
		text := s.text
		if s.file == "go.mod" {
			// The guide's replace points at a checkout beside the module.
			text = strings.ReplaceAll(text, "=> ../ecaphost/", "=> "+root+"/")
			if !strings.Contains(text, "github.com/ecaphost/ecaphost/sdk => "+root+"/sdk") {
				t.Fatalf("%s:%d: go.mod does not replace the sdk with ../ecaphost/sdk", guidePath, s.line)
			}
		}
		if s.lang == "go" {
			goFiles = append(goFiles, s.file)
		}
		p := filepath.Join(dir, filepath.FromSlash(s.file))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, need := range []string{"go.mod", "main.go", "Makefile"} {
		if !files[need] {
			t.Fatalf("the guide has no %s snippet", need)
		}
	}
	if len(goFiles) < 5 {
		t.Fatalf("only %d go snippets found: %v", len(goFiles), goFiles)
	}
	// The module's dependencies are the SDK's: its go.sum has them all,
	// so nothing is looked up beyond the module cache.
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}

	compiled := buildGuideBPF(t, dir, root)
	if !compiled {
		writeEmbedPlaceholders(t, dir, goFiles)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local")
	goCmd := goBinary()
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s on the guide's snippets: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("go %s:\n%s", strings.Join(args, " "), out)
	}
	run("build", "./...")
	run("vet", "./...")
	if compiled {
		run("test", "-count=1", "-v", "./...")
	}
}

// buildGuideBPF runs the guide's Makefile (make bpf) against this
// checkout's kern/include, when clang-16 is installed. It reports whether
// the object was built.
func buildGuideBPF(t *testing.T, dir, root string) bool {
	t.Helper()
	var missing []string
	for _, p := range []string{"make", "clang-16", "llvm-strip-16"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("ECAPHOST_E2E") == "1" {
			t.Fatalf("ECAPHOST_E2E=1 but the guide's eBPF C cannot be built: missing %s", strings.Join(missing, ", "))
		}
		t.Logf("not building the guide's eBPF C nor running its tests: missing %s", strings.Join(missing, ", "))
		return false
	}
	if err := os.MkdirAll(filepath.Join(dir, "bpf"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "bpf", "ECAP_INCLUDE="+filepath.Join(root, "kern", "include"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make bpf with the guide's Makefile and C: %v\n%s", err, out)
	}
	return true
}

var embedDirective = regexp.MustCompile(`(?m)^//go:embed (\S+)$`)

// writeEmbedPlaceholders creates an empty file for each //go:embed of the
// Go snippets that names a missing file, so they compile without clang.
func writeEmbedPlaceholders(t *testing.T, dir string, goFiles []string) {
	t.Helper()
	for _, f := range goFiles {
		p := filepath.Join(dir, filepath.FromSlash(f))
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range embedDirective.FindAllSubmatch(src, -1) {
			obj := filepath.Join(filepath.Dir(p), string(m[1]))
			if _, err := os.Stat(obj); err == nil {
				continue
			}
			if err := os.WriteFile(obj, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// goBinary is the go command: $GO when set (as make passes it), else the
// go on PATH, which picks the same toolchain as the one running this test
// (go.mod's go line and GOTOOLCHAIN rule both).
func goBinary() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func TestParseGuide(t *testing.T) {
	tests := []struct {
		name    string
		guide   string
		want    []string // file:lang
		wantErr string
	}{
		{name: "marked blocks", guide: "text\n<!-- snippet: a/b.go -->\n```go\npackage b\n```\n\n```sh\ngo build\n```\n<!-- snippet: Makefile -->\n```make\nall:\n```\n",
			want: []string{"a/b.go:go", "Makefile:make"}},
		{name: "unmarked go block", guide: "```go\npackage x\n```\n", wantErr: "without a <!-- snippet"},
		{name: "marker without block", guide: "<!-- snippet: x.go -->\nprose\n", wantErr: "not followed by a fenced block"},
		{name: "escaping path", guide: "<!-- snippet: ../x.go -->\n```go\n```\n", wantErr: "outside the module"},
		{name: "unclosed", guide: "<!-- snippet: x.go -->\n```go\npackage x\n", wantErr: "not closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGuide([]byte(tt.guide))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.file+":"+s.lang)
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") {
				t.Errorf("snippets %v, want %v", names, tt.want)
			}
		})
	}
}
