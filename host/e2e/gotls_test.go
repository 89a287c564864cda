package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// A Go toolchain the gotls tests build their HTTPS server and client
// (plugins/gotls/gotlsmod/testdata/gopeer) with, and how.
var goBuilds = []struct{ name, gocmd, toolchain string }{
	{"local", "go", "local"},
	{"go1.27", "go", "go1.27.3"},
	{"go1.19", "/usr/lib/go-1.19/bin/go", "local"},
}

var goVariants = []struct {
	name  string
	flags []string
}{
	{"plain", nil},
	{"stripped", []string{"-ldflags=-s -w"}},
	{"pie", []string{"-buildmode=pie", "-ldflags=-s -w"}},
}

// goPeers are the gopeer executables built in this test run, by
// "toolchain/variant", in goPeersDir (removed by TestMain).
var (
	goPeersMu  sync.Mutex
	goPeersDir string
	goPeers    map[string]string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if goPeersDir != "" {
		os.RemoveAll(goPeersDir)
	}
	os.Exit(code)
}

// buildGoPeers builds gopeer with every toolchain in every variant, once
// per test run, and returns the executables by "toolchain/variant".
func buildGoPeers(t *testing.T) map[string]string {
	t.Helper()
	goPeersMu.Lock()
	defer goPeersMu.Unlock()
	if goPeers != nil {
		return goPeers
	}
	dir, err := os.MkdirTemp("", "ecaphost-e2e-gopeer-")
	if err != nil {
		t.Fatal(err)
	}
	goPeersDir = dir
	src := filepath.Join(repoRoot(t), "plugins", "gotls", "gotlsmod", "testdata", "gopeer")
	built := map[string]string{}
	for _, tc := range goBuilds {
		if _, err := exec.LookPath(tc.gocmd); err != nil {
			harness.SkipOrFail(t, "Go toolchain %s: %v (scripts/test-deps.sh installs it)", tc.name, err)
		}
		for _, v := range goVariants {
			// Names of 15 bytes at most: the comm is the name.
			out := filepath.Join(dir, "gp-"+strings.TrimPrefix(tc.name, "go1.")+"-"+v.name)
			cmd := exec.Command(tc.gocmd, append(append([]string{"build", "-o", out}, v.flags...), ".")...)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0", "GOTOOLCHAIN="+tc.toolchain)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s build (%s): %v\n%s", tc.name, v.name, err, b)
			}
			built[tc.name+"/"+v.name] = out
		}
	}
	goPeers = built
	return built
}

// goServer is a running `gopeer server`.
type goServer struct {
	exe  string
	pid  int
	addr netip.AddrPort
}

func startGoServer(t *testing.T, exe string) goServer {
	t.Helper()
	cmd := exec.Command(exe, "server")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, perr := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(line, "listening ")))
	if err != nil || perr != nil {
		t.Fatalf("%s server printed %q: %v %v", exe, line, err, perr)
	}
	return goServer{exe: exe, pid: cmd.Process.Pid, addr: addr}
}

// goClient runs `gopeer client args... https://server` and returns its pid.
func goClient(t *testing.T, s goServer, args ...string) int {
	t.Helper()
	pid, out := runCommand(t, append(append([]string{s.exe, "client"}, args...), "https://"+s.addr.String())...)
	if !strings.Contains(out, " 200 ") {
		t.Fatalf("%s client %v: %s", s.exe, args, out)
	}
	return pid
}

// gotlsConfig is a config running the gotls module with config inside
// its config block.
func gotlsConfig(t *testing.T, events, config string) string {
	return jsonConfig(t, builtPlugins(t), events, fmt.Sprintf("module \"gotls\" {\n  config {\n    %s\n  }\n}\n", config))
}

func requireGoTLS(t *testing.T, programs ...string) {
	t.Helper()
	requireCapture(t, programs...)
	if _, err := os.Stat(filepath.Join(builtPlugins(t), "ecaphost-plugin-gotls")); err != nil {
		harness.SkipOrFail(t, "gotls plugin not built: %v", err)
	}
}

// uploadBody is what gopeer's client POSTs with -post n.
func uploadBody(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	return string(b)
}

// TestGoTLSText: HTTPS servers and clients built by Go 1.19, this
// machine's Go and Go 1.27, plain, stripped and PIE, all running before
// ecaphost starts the gotls module without a target (every running Go
// program with crypto/tls). For each, a GET and a 100 KiB POST over
// HTTP/2 and over HTTP/1.1 are decoded on the client's and the server's
// side: method, path, status, a header, the complete bodies, and both
// addresses.
func TestGoTLSText(t *testing.T) {
	requireGoTLS(t)
	peers := buildGoPeers(t)
	keys := slices.Sorted(mapKeys(peers))
	servers := map[string]goServer{}
	for _, k := range keys {
		servers[k] = startGoServer(t, peers[k])
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, gotlsConfig(t, events, ""))
	const size = 100 << 10
	body := uploadBody(size)
	sum := sha256.Sum256([]byte(body))
	answer := fmt.Sprintf("got %d bytes sha256 %s", size, hex.EncodeToString(sum[:]))
	type exchange struct {
		key, proto string
		s          goServer
		client     int
	}
	var runs []exchange
	for _, k := range keys {
		s := servers[k]
		runs = append(runs, exchange{k, "HTTP/2", s, goClient(t, s, "-post", fmt.Sprint(size))})
		runs = append(runs, exchange{k, "HTTP/1.1", s, goClient(t, s, "-h1", "-post", fmt.Sprint(size))})
	}
	for _, x := range runs {
		for _, side := range []struct {
			name   string
			pid    int
			reqDir string
		}{
			{"client", x.client, "egress"},
			{"server", x.s.pid, "ingress"},
		} {
			what := fmt.Sprintf("%s %s %s", x.key, x.proto, side.name)
			msg := func(kind string, match func(record) bool) func(record) bool {
				return func(r record) bool {
					return r.str("module") == "gotls" && r.str("kind") == kind && r.num("pid") == side.pid && r.field("proto") == x.proto && match(r)
				}
			}
			get := waitRecord(t, events, 15*time.Second, what+" GET", msg("http_request", func(r record) bool { return r.field("path") == "/hello" }))
			post := waitRecord(t, events, 15*time.Second, what+" POST", msg("http_request", func(r record) bool { return r.field("path") == "/upload" }))
			okGet := waitRecord(t, events, 15*time.Second, what+" GET's response", msg("http_response", func(r record) bool {
				return strings.Contains(r.payload(), "hello from gopeer at /hello")
			}))
			okPost := waitRecord(t, events, 15*time.Second, what+" POST's response", msg("http_response", func(r record) bool {
				return strings.Contains(r.payload(), answer)
			}))
			if get.field("method") != "GET" || post.field("method") != "POST" || post.field("body_bytes") != fmt.Sprint(size) ||
				!strings.HasSuffix(post.payload(), body) || post.field("header.Content-Type") != "application/octet-stream" {
				t.Errorf("%s: requests %v / %v", what, get["fields"], post["fields"])
			}
			if okGet.field("status") != "200" || okPost.field("status") != "200" || okGet.field("header.X-Gopeer") != "get" ||
				okPost.field("header.X-Gopeer") != "upload" {
				t.Errorf("%s: responses %v / %v", what, okGet["fields"], okPost["fields"])
			}
			for _, r := range []record{get, post, okGet, okPost} {
				local, _ := r.conn()["local"].(string)
				remote, _ := r.conn()["remote"].(string)
				serverEnd := remote
				if side.name == "server" {
					serverEnd = local
				}
				if serverEnd != x.s.addr.String() || !strings.HasPrefix(local, "127.0.0.1:") || !strings.HasPrefix(remote, "127.0.0.1:") {
					t.Errorf("%s %s: connection %s -> %s, server at %s", what, r.str("kind"), local, remote, x.s.addr)
				}
			}
			if d, _ := get.conn()["direction"].(string); d != side.reqDir {
				t.Errorf("%s: request direction %q, want %s", what, d, side.reqDir)
			}
		}
	}
	h.stop()
	noLoss(t, h, "gotls")
}

// isLoss tells whether a counter of the summary's LOSS COUNTERS column
// ("name=value") counts a loss: info_ counters count work done.
func isLoss(counter string) bool { return !strings.HasPrefix(counter, "info_") }

// noLoss checks the summary the host printed at exit: nothing lost by
// module, no loss counter above zero (info_ counters aside), nothing the stream decoder could
// not decode.
func noLoss(t *testing.T, h *host, module string) {
	t.Helper()
	out := h.stderr.String()
	for _, l := range strings.Split(out, "\n") {
		// MODULE  EVENTS  LOST  TRUNCATED  RESTARTS  LOSS COUNTERS (name=value, only those above 0)
		if f := strings.Fields(l); len(f) > 0 && f[0] == module && (len(f) < 5 || f[2] != "0" || f[3] != "0" || slices.ContainsFunc(f[5:], isLoss)) {
			t.Errorf("summary line %q: losses", l)
		}
		if strings.HasPrefix(l, module+": ") && (!strings.Contains(l, " 0 bytes shown undecoded") || !strings.Contains(l, " 0 protocol errors")) {
			t.Errorf("summary line %q", l)
		}
	}
	if !regexp.MustCompile(`MODULE +EVENTS`).MatchString(out) { // tabwriter pads to the longest module name
		t.Errorf("no summary in the host's output")
	}
}

// TestGoTLSKeylog: in keylog mode, tshark records loopback on its own
// while each Go client (every toolchain and variant) talks HTTP/1.1 and
// HTTP/2 to its server over TLS 1.3, and one over TLS 1.2; the key file
// ecaphost wrote alone lets tshark decrypt every request, and holds one
// set of lines per session.
func TestGoTLSKeylog(t *testing.T) {
	requireGoTLS(t, "tshark")
	peers := buildGoPeers(t)
	var servers []goServer
	var filter []string
	for _, k := range slices.Sorted(mapKeys(peers)) {
		s := startGoServer(t, peers[k])
		servers = append(servers, s)
		filter = append(filter, fmt.Sprintf("tcp port %d", s.addr.Port()))
	}
	dir := t.TempDir()
	keys, events := filepath.Join(dir, "keys.log"), filepath.Join(dir, "events.jsonl")
	capture := wireshark.StartFilter(t, strings.Join(filter, " or "))
	h := startHost(t, gotlsConfig(t, events, fmt.Sprintf("mode = \"keylog\"\n    keylog_file = %q", keys)))
	for _, s := range servers {
		goClient(t, s, "-h1")
		goClient(t, s)
	}
	pid12 := goClient(t, servers[0], "-h1", "-tls12")
	waitRecord(t, events, 10*time.Second, "the TLS 1.2 session's keys", func(r record) bool {
		return r.str("kind") == "tls_keys" && r.num("pid") == pid12 && r.field("version") == "TLS 1.2" && r.field("logged") == "true"
	})
	// Every session was logged by one side or the other.
	harness.Poll(10*time.Second, func() bool {
		n := 0
		for _, r := range readJSON(t, events) {
			if r.str("kind") == "tls_keys" && r.field("logged") == "true" {
				n++
			}
		}
		return n >= 2*len(servers)+1
	})
	recorded := capture.Stop(t)
	h.stop()
	opts := []string{"-o", "tls.keylog_file:" + keys}
	h1 := wireshark.Fields(t, recorded, opts, "http.request", "tcp.dstport", "http.request.uri")
	h2 := wireshark.Fields(t, recorded, opts, "http2.headers.path", "tcp.dstport", "http2.headers.path")
	var want1, want2 []string
	for _, s := range servers {
		want1 = append(want1, fmt.Sprintf("%d\t/hello", s.addr.Port()))
		want2 = append(want2, fmt.Sprintf("%d\t/hello", s.addr.Port()))
	}
	want1 = append(want1, fmt.Sprintf("%d\t/hello", servers[0].addr.Port()))
	sort.Strings(h1)
	sort.Strings(h2)
	sort.Strings(want1)
	sort.Strings(want2)
	if !slices.Equal(h1, want1) || !slices.Equal(h2, want2) {
		t.Errorf("tshark with ecaphost's key file decrypted HTTP/1.1 %q and HTTP/2 %q, want %q and %q", h1, h2, want1, want2)
	}
	for cr, ls := range wireshark.KeyLogLines(t, keys) {
		if n := len(ls); n != 1 && n != 4 {
			t.Errorf("session %s: %d lines, want one set (1 or 4): %q", cr, n, ls)
		}
	}
	if st, err := os.Stat(keys); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v", err)
	}
}

// TestGoTLSValidate: `ecaphost validate` refuses, naming the file and
// the reason, a binary that is no Go program, a Go program without
// crypto/tls, and a Go release the module does not know.
func TestGoTLSValidate(t *testing.T) {
	requireBuilt(t)
	peers := buildGoPeers(t)
	data, err := os.ReadFile(peers["local/stripped"])
	if err != nil {
		t.Fatal(err)
	}
	v := runtimeVersion(t, peers["local/stripped"])
	unknown := filepath.Join(t.TempDir(), "gp-unknown")
	if err := os.WriteFile(unknown, []byte(strings.ReplaceAll(string(data), v, "go1.99"+strings.Repeat("9", len(v)-6))), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ binary, want string }{
		{"/bin/ls", "/bin/ls has no Go build information"},
		{"/nonexistent/go-server", "/nonexistent/go-server does not exist"},
		{unknown, "a release whose structure offsets the module does not know (it knows go1.17 to go1.27); set go_version"},
	} {
		cfg := gotlsConfig(t, filepath.Join(t.TempDir(), "events.jsonl"), fmt.Sprintf("binary = %q", tt.binary))
		out, err := exec.Command(filepath.Join(repoRoot(t), "bin", "ecaphost"), "validate", cfg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "binary") {
			t.Errorf("validate with binary %s: %v\n%s\nwant %q", tt.binary, err, out, tt.want)
		}
	}
}

// runtimeVersion returns the Go version in exe's build information.
func runtimeVersion(t *testing.T, exe string) string {
	out, err := exec.Command("go", "version", exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestGoTLSStartedLater: a Go executable first run after ecaphost started
// (a copy of a test program, a file no process ran before) is found by
// the module's node-wide discovery, and its server's and client's HTTP/2
// exchange is captured.
func TestGoTLSStartedLater(t *testing.T) {
	requireGoTLS(t)
	peers := buildGoPeers(t)
	startGoServer(t, peers["local/plain"]) // a Go program to probe at start
	data, err := os.ReadFile(peers["go1.19/pie"])
	if err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, gotlsConfig(t, events, ""))
	later := filepath.Join(goPeersDir, "gp-later")
	if err := os.WriteFile(later, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(later) })
	s := startGoServer(t, later)
	h.waitLog("gp-later", 10*time.Second) // discovery probed it
	pid := goClient(t, s)
	for _, side := range []int{pid, s.pid} {
		waitRecord(t, events, 15*time.Second, "the later program's request", func(r record) bool {
			return r.str("module") == "gotls" && r.str("kind") == "http_request" && r.num("pid") == side && r.field("path") == "/hello" &&
				r.field("proto") == "HTTP/2"
		})
	}
	h.stop()
}
