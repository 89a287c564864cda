package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// The OpenTelemetry Collector of these tests is built from test/ecosystem,
// a module of its own (GOWORK=off), so it is no dependency of host/; the
// Go build cache makes every build after the first a link.
var (
	collectorOnce sync.Once
	collectorBin  string
	collectorErr  error
)

func buildCollector(t *testing.T) string {
	t.Helper()
	collectorOnce.Do(func() {
		src := filepath.Join(repoRoot(t), "test", "ecosystem")
		// The linked binary is kept too, named by a hash of its sources:
		// linking it takes longer than the tests that use it.
		h := sha256.New()
		for _, f := range []string{"go.mod", "go.sum", "otelcol/main.go"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				collectorErr = err
				return
			}
			h.Write(b)
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "ecaphost-test")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			collectorErr = err
			return
		}
		collectorBin = filepath.Join(dir, fmt.Sprintf("otelcol-%x", h.Sum(nil)[:8]))
		if _, err := os.Stat(collectorBin); err == nil {
			return
		}
		began := time.Now()
		tmp := collectorBin + ".tmp"
		cmd := exec.Command("go", "build", "-o", tmp, "./otelcol")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			collectorErr = fmt.Errorf("building the test Collector: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, collectorBin); err != nil {
			collectorErr = err
			return
		}
		t.Logf("test Collector built in %v", time.Since(began).Round(time.Millisecond))
	})
	if collectorErr != nil {
		harness.SkipOrFail(t, "%v", collectorErr)
	}
	return collectorBin
}

// collector is a running test Collector: an OTLP receiver on a loopback
// port writing every log record it takes to a JSON file.
type collector struct {
	t     *testing.T
	bin   string
	dir   string
	port  int
	proto string // "grpc" or "http"
	tls   *testCA
	cmd   *exec.Cmd
	done  chan struct{}
	files []string // one file per run
	out   *harness.Buffer
}

func startCollector(t *testing.T, proto string, ca *testCA) *collector {
	t.Helper()
	c := &collector{t: t, bin: buildCollector(t), dir: t.TempDir(), port: tlspeer.FreePort(t), proto: proto, tls: ca}
	c.start()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("collector output:\n%s", c.out.String())
		}
	})
	return c
}

func (c *collector) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.port) }

// start runs the Collector, writing to a new file, and waits until it
// listens.
func (c *collector) start() {
	c.t.Helper()
	file := filepath.Join(c.dir, fmt.Sprintf("logs-%d.json", len(c.files)))
	c.files = append(c.files, file)
	tlsConf := ""
	if c.tls != nil {
		tlsConf = fmt.Sprintf("\n        tls:\n          cert_file: %s\n          key_file: %s", c.tls.serverCert, c.tls.serverKey)
	}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      %s:
        endpoint: %s%s
exporters:
  file:
    path: %s
    format: json
    flush_interval: 100ms
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`, c.proto, c.endpoint(), tlsConf, file)
	path := filepath.Join(c.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if c.out == nil {
		c.out = &harness.Buffer{}
	}
	c.cmd = exec.Command(c.bin, "--config", "file:"+path)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.done = make(chan struct{})
	cmd, done := c.cmd, c.done
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.endpoint(), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-done:
			c.t.Fatalf("the Collector exited at start:\n%s", c.out.String())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the Collector did not listen on %s within 20s:\n%s", c.endpoint(), c.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the Collector at once (SIGKILL): what it had not written is
// lost with it, as when a Collector crashes.
func (c *collector) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.cmd = nil
}

// stop ends the Collector gracefully, so its file holds everything it
// acknowledged.
func (c *collector) stop() {
	c.t.Helper()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.t.Fatalf("the Collector did not stop within 20s of SIGTERM")
	}
	c.cmd = nil
}

// otlpRecord is one log record the Collector wrote, attributes flattened
// to strings, with its resource's attributes.
type otlpRecord struct {
	attrs    map[string]string
	resource map[string]string
	body     string
	event    string
}

type otlpAnyValue struct {
	StringValue *string `json:"stringValue"`
	IntValue    *string `json:"intValue"` // int64 in protobuf JSON is a string
	BytesValue  *string `json:"bytesValue"`
	BoolValue   *bool   `json:"boolValue"`
}

func (v otlpAnyValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return *v.IntValue
	case v.BytesValue != nil:
		return *v.BytesValue
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	}
	return ""
}

type otlpKeyValue struct {
	Key   string       `json:"key"`
	Value otlpAnyValue `json:"value"`
}

func flatten(kvs []otlpKeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// records reads every record of every run's file.
func (c *collector) records() []otlpRecord {
	c.t.Helper()
	var out []otlpRecord
	for _, file := range c.files {
		f, err := os.Open(file)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			c.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var req struct {
				ResourceLogs []struct {
					Resource struct {
						Attributes []otlpKeyValue `json:"attributes"`
					} `json:"resource"`
					ScopeLogs []struct {
						LogRecords []struct {
							EventName  string         `json:"eventName"`
							Body       otlpAnyValue   `json:"body"`
							Attributes []otlpKeyValue `json:"attributes"`
						} `json:"logRecords"`
					} `json:"scopeLogs"`
				} `json:"resourceLogs"`
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				// The last line of a killed Collector may be cut.
				c.t.Logf("%s: unreadable line (%v)", file, err)
				continue
			}
			for _, rl := range req.ResourceLogs {
				res := flatten(rl.Resource.Attributes)
				for _, sl := range rl.ScopeLogs {
					for _, lr := range sl.LogRecords {
						out = append(out, otlpRecord{attrs: flatten(lr.Attributes), resource: res, body: lr.Body.String(), event: lr.EventName})
					}
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			c.t.Fatal(err)
		}
	}
	return out
}

// testCA is a CA and a server certificate it signed for 127.0.0.1.
type testCA struct {
	caFile, serverCert, serverKey string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{
		caFile:     filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"),
		serverKey:  filepath.Join(dir, "server.key"),
	}
	for path, block := range map[string]*pem.Block{
		ca.caFile:     {Type: "CERTIFICATE", Bytes: caDER},
		ca.serverCert: {Type: "CERTIFICATE", Bytes: leafDER},
		ca.serverKey:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}
