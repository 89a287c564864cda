// Command gopeer is the HTTPS server and client the gotls module's tests
// build with several Go releases (this machine's, go1.27.3, Debian's 1.19)
// and capture: net/http over crypto/tls, HTTP/1.1 or HTTP/2. It must build
// with Go 1.19.
//
//	gopeer server [-h1] [-keylog FILE]     listens on 127.0.0.1:0, prints "listening ADDR"
//	gopeer client [-h1] [-tls12] [-post N] [-n K] BASE
//	                                       GET BASE/hello (K times), then POST N bytes to BASE/upload
//
// The server answers GET /hello (and any other GET path) with a body
// naming the path, and POST /upload with the length and SHA-256 of the
// body it read. The client prints each response's status and body.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gopeer server|client [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = server(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopeer:", err)
		os.Exit(1)
	}
}

// Body is what the server's GET handler answers, for the tests to find.
func getBody(path string) string { return "hello from gopeer at " + path + "\n" }

func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	h1 := fs.Bool("h1", false, "offer HTTP/1.1 only (no h2 in ALPN)")
	size := fs.Int("size", 0, "answer GET with this many bytes instead of the greeting")
	_ = fs.Parse(args)
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if *h1 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	big := bytes.Repeat([]byte("x"), *size)
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Gopeer", "upload")
		fmt.Fprintf(w, "got %d bytes sha256 %x\n", n, h.Sum(nil))
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Gopeer", "get")
		if *size > 0 {
			w.Write(big)
			return
		}
		io.WriteString(w, getBody(r.URL.Path))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s\n", ln.Addr())
	return srv.ServeTLS(ln, "", "")
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	h1 := fs.Bool("h1", false, "HTTP/1.1 only")
	post := fs.Int("post", 0, "then POST this many bytes to URL/upload")
	n := fs.Int("n", 1, "GET this many times")
	tls12 := fs.Bool("tls12", false, "TLS 1.2 at most")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("client: want one base URL")
	}
	base := strings.TrimSuffix(fs.Arg(0), "/")
	cfg := &tls.Config{InsecureSkipVerify: true}
	if *tls12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: !*h1}
	if *h1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	show := func(resp *http.Response) error {
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s %d %q\n", resp.Proto, resp.Request.URL.Path, resp.StatusCode, strings.TrimSpace(string(b)))
		return nil
	}
	for i := 0; i < *n; i++ {
		resp, err := c.Get(base + "/hello")
		if err != nil {
			return err
		}
		if err := show(resp); err != nil {
			return err
		}
	}
	if *post > 0 {
		body := make([]byte, *post)
		for i := range body {
			body[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
		}
		resp, err := c.Post(base+"/upload", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return err
		}
		if err := show(resp); err != nil {
			return err
		}
	}
	tr.CloseIdleConnections()
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gopeer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
