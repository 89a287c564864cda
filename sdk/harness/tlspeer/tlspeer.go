package tlspeer

import (
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenTimeout bounds how long a started server may take to listen.
const listenTimeout = 10 * time.Second

// SelfSigned writes a new RSA key and a self-signed certificate for
// localhost, valid one day, into dir as cert.pem and key.pem (with
// openssl req) and returns their paths.
func SelfSigned(t testing.TB, dir string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
		"-days", "1", "-keyout", key, "-out", cert).CombinedOutput()
	if err != nil {
		t.Fatalf("making a certificate: %v\n%s", err, out)
	}
	return cert, key
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until something accepts connections on
// 127.0.0.1:port, and fails the test after 10 seconds.
func WaitListening(t testing.TB, port int) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(listenTimeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v: %v", addr, listenTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WebRoot makes a new world-readable directory holding files (name to
// content), for SServer or another web server to serve, and returns it.
func WebRoot(t testing.TB, files map[string]string) string {
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

// SServer runs `openssl s_server -WWW -quiet` with a new self-signed
// certificate on a free port of 127.0.0.1, serving the files of dir, and
// returns the port once it listens. extraArgs are appended to its
// arguments. The server is killed when the test ends.
//
// s_server -WWW answers a GET of a file below dir with HTTP/1.0 200 ok and
// the file's content; it serves one connection at a time.
func SServer(t testing.TB, dir string, extraArgs ...string) int {
	t.Helper()
	cert, key := SelfSigned(t, t.TempDir())
	port := FreePort(t)
	args := append([]string{"s_server", "-WWW", "-quiet", "-accept", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"-cert", cert, "-key", key}, extraArgs...)
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	start(t, cmd, port)
	return port
}

// Selfserv runs NSS's selfserv on a free port of 127.0.0.1 with a new NSS
// database holding a self-signed certificate for localhost (made with
// certutil), accepting TLS 1.2 and later. It answers every request with a
// canned HTTP/1.0 200 OK response whose body echoes the request. It
// returns selfserv's pid and port once it listens; selfserv is killed when
// the test ends.
func Selfserv(t testing.TB) (pid, port int) {
	t.Helper()
	db := t.TempDir()
	noise := filepath.Join(db, "noise")
	if err := os.WriteFile(noise, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", db, "--empty-password"},
		{"-S", "-s", "CN=localhost", "-n", "server", "-x", "-t", "CTu,,", "-d", db, "-z", noise, "-k", "rsa", "-g", "2048", "-v", "12"},
	} {
		if out, err := exec.Command("certutil", args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	port = FreePort(t)
	cmd := exec.Command("selfserv", "-d", db, "-n", "server", "-p", strconv.Itoa(port), "-V", "tls1.2:")
	start(t, cmd, port)
	return cmd.Process.Pid, port
}

// start starts the server cmd, arranges for it to be killed when the test
// ends (logging its output if the test failed) and waits until it listens
// on port.
func start(t testing.TB, cmd *exec.Cmd, port int) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting %s: %v", cmd.Args[0], err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("output of %s:\n%s", strings.Join(cmd.Args, " "), b)
		}
	})
	WaitListening(t, port)
}
