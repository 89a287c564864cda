package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ecaphost runs bin/ecaphost with args, bounded by timeout, and returns
// its exit code and combined output.
func ecaphost(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "bin", "ecaphost"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ecaphost %v did not finish within %v:\n%s", args, timeout, out.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// pluginDir makes a private directory holding one plugin script.
func pluginDir(t *testing.T, name, script string) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "ecaphost-plugin-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGarbageOnStdoutIsAClearError(t *testing.T) {
	requireBuilt(t)
	dir := pluginDir(t, "garbage", "#!/bin/sh\necho 'hello, I am not a plugin'\nsleep 60\n")
	cfg := writeConfig(t, `plugin_dir = "`+dir+`"
module "garbage" {}
`)
	start := time.Now()
	code, out := ecaphost(t, 30*time.Second, "validate", cfg)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{"capture.hcl:2:8: error: Plugin failed to start", "plugin garbage", "hello, I am not a plugin"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
}

func TestValidate(t *testing.T) {
	requireBuilt(t)
	plugins := builtPlugins(t)
	cases := []struct {
		name     string
		hcl      string
		wantCode int
		wantOut  string
	}{
		{"valid", `plugin_dir = "` + plugins + `"
module "bash" {
  config { readline_binary = "/bin/bash" }
}
`, 0, "valid: 1 module(s): bash"},
		{"unknown plugin", `plugin_dir = "` + plugins + `"
module "nosuch" {}
`, 2, `capture.hcl:2:8: error: Unknown plugin`},
		{"plugin's own check", `plugin_dir = "` + plugins + `"
module "bash" {
  config {
    readline_binary = "/nonexistent/bash"
  }
}
`, 2, `capture.hcl:4:23: error: `},
		{"wrong type in config", `plugin_dir = "` + plugins + `"
module "bash" {
  config {
    readline_binary = ["a"]
  }
}
`, 2, `capture.hcl:4:`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := ecaphost(t, 30*time.Second, "validate", writeConfig(t, tc.hcl))
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Errorf("exit %d, want %d; output should contain %q:\n%s", code, tc.wantCode, tc.wantOut, out)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	requireBuilt(t)
	cases := []struct {
		args     []string
		wantCode int
		want     *regexp.Regexp
	}{
		{[]string{"--help"}, 0, regexp.MustCompile(`ecaphost run \[flags\] \[FILE\]`)},
		{[]string{"run", "--help"}, 0, regexp.MustCompile(`(?s)Usage: ecaphost run.*-log-level`)},
		{[]string{"version"}, 0, regexp.MustCompile(`module API versions 1`)},
		{[]string{"frobnicate"}, 2, regexp.MustCompile(`unknown command "frobnicate"`)},
		{[]string{"run", "--log-level", "loud"}, 2, regexp.MustCompile(`--log-level "loud"`)},
		{[]string{"run", "/nonexistent.hcl"}, 2, regexp.MustCompile(`reading config: open /nonexistent.hcl`)},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := ecaphost(t, 10*time.Second, tc.args...)
			if code != tc.wantCode || !tc.want.MatchString(out) {
				t.Errorf("exit %d, want %d; output should match %q:\n%s", code, tc.wantCode, tc.want, out)
			}
		})
	}
}
