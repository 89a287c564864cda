package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a key and certificate for localhost into dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
		"-days", "1", "-keyout", key, "-out", cert).CombinedOutput()
	if err != nil {
		t.Fatalf("making a certificate: %v\n%s", err, out)
	}
	return cert, key
}

// waitListening waits until something accepts on 127.0.0.1:port.
func waitListening(t *testing.T, port int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not listening on %d: %v", what, port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webRoot makes a world-readable directory holding files (name → content).
func webRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSServer runs `openssl s_server -WWW` serving dir on a free port.
func startSServer(t *testing.T, dir string, extra ...string) int {
	t.Helper()
	cert, key := selfSigned(t, t.TempDir())
	port := freePort(t)
	args := append([]string{"s_server", "-WWW", "-accept", fmt.Sprintf("127.0.0.1:%d", port), "-cert", cert, "-key", key, "-quiet"}, extra...)
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(t, port, "openssl s_server")
	return port
}

// startNginx runs nginx in the foreground with one TLS server on a free
// port serving dir; extra goes inside the server block.
func startNginx(t *testing.T, dir, extra string) int {
	t.Helper()
	conf := t.TempDir()
	if err := os.Chmod(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key := selfSigned(t, conf)
	port := freePort(t)
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
	cmd := exec.Command("nginx", "-c", path, "-g", "daemon off;")
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
	})
	waitListening(t, port, "nginx ("+stderr.String()+")")
	return port
}

// heldCommand is a command started behind `read` so its pid is known
// before it does anything: sh execs it when release is called.
type heldCommand struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *syncBuffer
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
	h := &heldCommand{out: &syncBuffer{}, stdin: w}
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

// lines returns the lines of s, for log messages.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
