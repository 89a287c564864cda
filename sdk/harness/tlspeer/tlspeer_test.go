package tlspeer_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

func requirePrograms(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			harness.SkipOrFail(t, "needs %s on PATH", p)
		}
	}
}

// get sends request over TLS to 127.0.0.1:port and reads the response
// until it holds want, the server closes, or 10 seconds pass.
func get(t *testing.T, port int, request, want string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	var resp []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(resp, []byte(want)) {
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp
}

func TestSServer(t *testing.T) {
	requirePrograms(t, "openssl")
	port := tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"page.txt": "tlspeer-marker\n"}))
	resp := get(t, port, "GET /page.txt HTTP/1.0\r\n\r\n", "tlspeer-marker")
	if !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 ok\r\n")) || !bytes.Contains(resp, []byte("tlspeer-marker")) {
		t.Errorf("s_server answered %q", resp)
	}
}

func TestSelfserv(t *testing.T) {
	requirePrograms(t, "selfserv", "certutil")
	pid, port := tlspeer.Selfserv(t)
	if pid <= 0 {
		t.Errorf("pid %d", pid)
	}
	resp := get(t, port, "GET /echoed HTTP/1.0\r\n\r\n", "GET /echoed")
	if !bytes.HasPrefix(resp, []byte("HTTP/1.0 200 OK\r\n")) || !bytes.Contains(resp, []byte("GET /echoed")) {
		t.Errorf("selfserv answered %q", resp)
	}
}

func TestSelfSignedIsForLocalhost(t *testing.T) {
	requirePrograms(t, "openssl")
	cert, key := tlspeer.SelfSigned(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if cn := pair.Leaf.Subject.CommonName; cn != "localhost" {
		t.Errorf("certificate for %q, want localhost", cn)
	}
}
