package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// webRoot is tlspeer.WebRoot under the name keylog_test.go uses.
var webRoot = tlspeer.WebRoot

// startNginx runs nginx in the foreground with one TLS server on a free
// port serving dir; extra goes inside the server block.
func startNginx(t *testing.T, dir, extra string) int {
	t.Helper()
	return startNginxBin(t, "nginx", dir, extra)
}

// startNginxBin is startNginx running the nginx binary bin.
func startNginxBin(t *testing.T, bin, dir, extra string) int {
	t.Helper()
	conf := t.TempDir()
	if err := os.Chmod(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key := tlspeer.SelfSigned(t, conf)
	port := tlspeer.FreePort(t)
	cfg := fmt.Sprintf(`
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  default_type text/plain;
  server {
    listen 127.0.0.1:%[2]d ssl http2;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    root %[5]s;
    %[6]s
  }
}
`, conf, port, cert, key, dir, extra)
	path := filepath.Join(conf, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-g", "daemon off;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("nginx stderr:\n%s", stderr.String())
		}
	})
	tlspeer.WaitListening(t, port)
	return port
}

// heldCommand is a command started behind `read` so its pid is known
// before it does anything: sh execs it when release is called.
type heldCommand struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *harness.Buffer
}

func holdCommand(t *testing.T, argv ...string) *heldCommand {
	t.Helper()
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &heldCommand{out: &harness.Buffer{}, stdin: w}
	h.cmd = exec.Command("/bin/sh", "-c", "read go && exec "+strings.Join(quoted, " "))
	h.cmd.Stdin = r
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { _ = h.cmd.Process.Kill(); _ = h.cmd.Wait(); w.Close() })
	return h
}

func (h *heldCommand) pid() int { return h.cmd.Process.Pid }

func (h *heldCommand) release() { fmt.Fprintln(h.stdin, "go") }

// wait waits for the command and fails the test if it failed.
func (h *heldCommand) wait(t *testing.T) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v: %v\n%s", h.cmd.Args, err, h.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not finish", h.cmd.Args)
	}
	return h.out.String()
}

// run runs argv now and returns its pid and output.
func runCommand(t *testing.T, argv ...string) (int, string) {
	t.Helper()
	h := holdCommand(t, argv...)
	h.release()
	out := h.wait(t)
	return h.pid(), out
}
