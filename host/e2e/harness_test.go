package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// repoRoot is the checkout this test file is in.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// requireCapture checks what every capture test needs: root, BTF,
// uprobes, the named programs and the built binaries.
func requireCapture(t *testing.T, programs ...string) {
	t.Helper()
	harness.RequirePrivileges(t, programs...)
	requireBuilt(t)
}

func requireBuilt(t *testing.T) {
	t.Helper()
	for _, p := range []string{"bin/ecaphost", "bin/plugins/ecaphost-plugin-bash"} {
		if _, err := os.Stat(filepath.Join(repoRoot(t), p)); err != nil {
			harness.SkipOrFail(t, "%s not built (run make build): %v", p, err)
		}
	}
}

// host is a running bin/ecaphost.
type host struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *harness.Buffer
	done   chan struct{}
	err    error
}

// writeConfig writes an HCL config into a temp dir and returns its path.
func writeConfig(t *testing.T, hcl string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "capture.hcl")
	if err := os.WriteFile(p, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonConfig writes a config that loads plugins from pluginDir, writes
// JSON to the file events and runs modules (HCL module blocks), and
// returns its path.
func jsonConfig(t *testing.T, pluginDir, events, modules string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`plugin_dir = %q
output "file" {
  path   = %q
  format = "json"
}
%s`, pluginDir, events, modules))
}

// builtPlugins is the directory make build puts the plugins in.
func builtPlugins(t *testing.T) string { return filepath.Join(repoRoot(t), "bin", "plugins") }

// startHost runs `bin/ecaphost run [flags] config` and waits until it
// captures.
func startHost(t *testing.T, config string, flags ...string) *host {
	t.Helper()
	h := spawnHost(t, config, flags...)
	h.waitLog("capturing", 30*time.Second)
	return h
}

// spawnHost runs `bin/ecaphost run [flags] config`.
func spawnHost(t *testing.T, config string, flags ...string) *host {
	t.Helper()
	h := &host{t: t, stderr: &harness.Buffer{}, done: make(chan struct{})}
	args := append(append([]string{"run", "--log-level", "debug"}, flags...), config)
	h.cmd = exec.Command(filepath.Join(repoRoot(t), "bin", "ecaphost"), args...)
	h.cmd.Stderr = h.stderr
	h.cmd.Stdout = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.err = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = h.cmd.Process.Kill()
			<-h.done
		}
		if t.Failed() {
			t.Logf("ecaphost output:\n%s", h.stderr.String())
		}
	})
	return h
}

func (h *host) waitLog(substr string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(h.stderr.String(), substr) {
		select {
		case <-h.done:
			h.t.Fatalf("ecaphost exited (%v) before logging %q:\n%s", h.err, substr, h.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("ecaphost did not log %q within %v:\n%s", substr, timeout, h.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGINT and waits for a clean exit.
func (h *host) stop() {
	h.t.Helper()
	h.interrupt()
	if h.err != nil {
		h.t.Fatalf("ecaphost exited with %v:\n%s", h.err, h.stderr.String())
	}
}

// interrupt sends SIGINT and returns how long the host took to exit.
func (h *host) interrupt() time.Duration {
	h.t.Helper()
	began := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGINT); err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.t.Fatalf("ecaphost did not exit within 30s of SIGINT")
	}
	return time.Since(began)
}

// pluginPIDs returns the pids of the host's plugin processes named name.
func (h *host) pluginPIDs(name string) []int {
	out, _ := exec.Command("pgrep", "-P", fmt.Sprint(h.cmd.Process.Pid), "-f", "ecaphost-plugin-"+name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		fmt.Sscan(f, &pid)
		pids = append(pids, pid)
	}
	return pids
}

// record is one line of a JSON output file.
type record map[string]any

func (r record) str(k string) string { s, _ := r[k].(string); return s }
func (r record) num(k string) int    { f, _ := r[k].(float64); return int(f) }
func (r record) payload() string     { return r.str("payload") }

func (r record) field(k string) string {
	f, _ := r["fields"].(map[string]any)
	s, _ := f[k].(string)
	return s
}

// readJSON reads every complete line of a JSON-lines output file.
func readJSON(t *testing.T, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line being written
		}
		out = append(out, r)
	}
	return out
}

// waitRecord polls path until a record matches.
func waitRecord(t *testing.T, path string, timeout time.Duration, what string, match func(record) bool) record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range readJSON(t, path) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			recs := readJSON(t, path)
			var tail []string
			for _, r := range recs[max(0, len(recs)-5):] {
				tail = append(tail, fmt.Sprint(r))
			}
			t.Fatalf("no record of %s in %s within %v; it holds %d records, ending with:\n%s", what, path, timeout, len(recs), strings.Join(tail, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shell is an interactive bash on a pseudo-terminal.
type shell struct {
	t   *testing.T
	cmd *exec.Cmd
	tty *os.File
	out *harness.Buffer
}

func startShell(t *testing.T) *shell {
	t.Helper()
	return startShellCmd(t, exec.Command("/bin/bash", "--norc", "--noprofile", "-i"), nil)
}

// startShellCmd starts cmd, an interactive bash, on a pseudo-terminal;
// started, when set, is called once it runs.
func startShellCmd(t *testing.T, cmd *exec.Cmd, started func()) *shell {
	t.Helper()
	cmd.Env = append(os.Environ(), "TERM=dumb", "PS1=e2e$ ")
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	s := &shell{t: t, cmd: cmd, tty: tty, out: &harness.Buffer{}}
	if started != nil {
		started()
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if started == nil { // else its starter waits for it
			_ = cmd.Wait()
		}
		tty.Close()
	})
	s.waitOutput("e2e$ ", 1)
	return s
}

func (s *shell) pid() int { return s.cmd.Process.Pid }

// run types line and waits for the next prompt.
func (s *shell) run(line string) {
	s.t.Helper()
	n := strings.Count(s.out.String(), "e2e$ ")
	if _, err := s.tty.Write([]byte(line + "\n")); err != nil {
		s.t.Fatal(err)
	}
	s.waitOutput("e2e$ ", n+1)
}

func (s *shell) waitOutput(substr string, count int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.out.String(), substr) < count {
		if time.Now().After(deadline) {
			s.t.Fatalf("bash printed no %q (#%d) within 10s; output:\n%s", substr, count, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uniq returns a marker unique to this run.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("payload_b64: %v", err)
	}
	return b
}
