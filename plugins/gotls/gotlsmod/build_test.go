package gotlsmod

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// A toolchain the tests build Go programs with.
type toolchain struct {
	name  string
	gocmd string
	env   []string
}

var (
	localGo = toolchain{name: "local", gocmd: "go", env: []string{"GOTOOLCHAIN=local"}}
	go127   = toolchain{name: "go1.27", gocmd: "go", env: []string{"GOTOOLCHAIN=go1.27.3"}}
	go119   = toolchain{name: "go1.19", gocmd: "/usr/lib/go-1.19/bin/go", env: []string{"GOTOOLCHAIN=local"}}
)

// Build variants of a test program: go build flags.
var variants = map[string][]string{
	"plain":    nil,
	"stripped": {"-ldflags=-s -w"},
	"pie":      {"-buildmode=pie", "-ldflags=-s -w"},
}

var builds struct {
	sync.Mutex
	dir   string
	files map[string]string
}

// TestMain removes the programs the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// build builds testdata/<prog> with tc in variant, once per test run, and
// returns the executable's path.
func build(t *testing.T, tc toolchain, prog, variant string) string {
	t.Helper()
	if _, err := exec.LookPath(tc.gocmd); err != nil {
		harness.SkipOrFail(t, "toolchain %s: %v (scripts/test-deps.sh installs it)", tc.name, err)
	}
	builds.Lock()
	defer builds.Unlock()
	key := tc.name + "-" + prog + "-" + variant
	if p, ok := builds.files[key]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "gotls-test-")
		if err != nil {
			t.Fatal(err)
		}
		// Readable by all: probed processes may run as another user.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.files = dir, map[string]string{}
	}
	out := filepath.Join(builds.dir, key)
	src, err := filepath.Abs(filepath.Join("testdata", prog))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tc.gocmd, append(append([]string{"build", "-o", out}, variants[variant]...), ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0"}, tc.env...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s build %s (%s): %v\n%s", tc.name, prog, variant, err, b)
	}
	builds.files[key] = out
	return out
}

// withVersion copies the executable src, its Go version in the build
// information replaced by version (as long as the original), and returns
// the copy's path.
func withVersion(t *testing.T, src, version string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := inspect(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(version) != len(info.GoVersion) {
		t.Fatalf("version %q is not as long as %q", version, info.GoVersion)
	}
	n := strings.Count(string(b), info.GoVersion)
	if n == 0 {
		t.Fatalf("%s does not hold %q", src, info.GoVersion)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(src)+"-"+version)
	if err := os.WriteFile(out, []byte(strings.ReplaceAll(string(b), info.GoVersion, version)), 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}
