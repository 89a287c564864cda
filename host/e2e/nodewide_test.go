package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/container"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// filesProbedRe reads the count of files node-wide discovery probed from
// the plugin's "node-wide discovery done" line.
var filesProbedRe = regexp.MustCompile(`node-wide discovery done:.* files_probed=(\d+)`)

// TestStopWithManyProbedFiles: with discovery probing many files (60
// processes, each mapping its own copy of libssl, a dozen probes on
// each), SIGINT ends the host within its 2 s bound, and no module is
// killed for being slow to detach (which logs an ERROR). Each copy's
// probes are uprobe_multi links detached side by side
// (sdk/ebpfbase/uprobes.go); as perf-event uprobes detached one by one
// they took about 20 s for 20 files here.
func TestStopWithManyProbedFiles(t *testing.T) {
	requireOpenSSL(t, "unshare", "sleep")
	const n = 60
	lib := systemLibssl(t)
	dir := t.TempDir()
	for i := range n {
		copyLib := filepath.Join(dir, strconv.Itoa(i), "libssl.so.3")
		if err := os.MkdirAll(filepath.Dir(copyLib), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(lib)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(copyLib, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sleep", "300")
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+copyLib)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	// The capture keeps to an idle container: what is measured is the
	// detach, not the draining of other tests' traffic.
	idle := container.Start(t, container.NewRootFS(t, "sleep"), nil, "/bin/sleep", "300")
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, fmt.Sprintf("container = %q", idle.ID[:12]), ""))
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(h.stderr.String(), "probing a file found node-wide") < n {
		if time.Now().After(deadline) {
			t.Fatalf("discovery probed %d files within 20 s, want the %d copies", strings.Count(h.stderr.String(), "probing a file found node-wide"), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := h.interrupt()
	log := h.stderr.String()
	m := filesProbedRe.FindStringSubmatch(log)
	t.Logf("SIGINT ended the host in %v, %d files probed node-wide", took.Round(time.Millisecond), n)
	if m == nil {
		t.Errorf("no count of the files probed at the end:\n%s", log)
	} else if probed, _ := strconv.Atoi(m[1]); probed < n {
		t.Errorf("%d files probed at the end, want at least %d", probed, n)
	}
	if took > 2*time.Second {
		t.Errorf("SIGINT took %v to end the host, want 2 s at most", took)
	}
	if strings.Contains(log, "[ERROR]") || h.err != nil {
		t.Errorf("exit %v; an ERROR was logged or the exit was not clean:\n%s", h.err, log)
	}
}

// TestMakeRunCapturesContainerStartedLater is issue 14's done-when: the
// host run as `make run` runs it (bin/ecaphost run from the checkout, the
// embedded default config: bash and openssl, text on stdout) captures a
// containerised curl started after it, whose own libssl copy no process
// mapped before, the lines naming the container, its pod and cgroup.
func TestMakeRunCapturesContainerStartedLater(t *testing.T) {
	requireOpenSSL(t, "unshare")
	marker := uniq("make-run-ctr")
	port := tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"mr.txt": marker + "\n"}))
	stdout, logs := &harness.Buffer{}, &harness.Buffer{}
	cmd := exec.Command(filepath.Join("bin", "ecaphost"), "run")
	cmd.Dir = repoRoot(t)
	cmd.Stdout, cmd.Stderr = stdout, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("ecaphost log:\n%s", logs.String())
		}
	})
	if !harness.Poll(30*time.Second, func() bool { return strings.Contains(logs.String(), "capturing") }) {
		t.Fatalf("ecaphost run did not start capturing:\n%s", logs.String())
	}

	root := container.NewRootFS(t, "sh", "sleep", "curl")
	c := container.Start(t, root, nil, "/bin/sh", "-c", fmt.Sprintf("sleep 1; curl -sk https://127.0.0.1:%d/mr.txt", port))
	identity := fmt.Sprintf("cgroup=%s container_id=%s container_runtime=containerd pod_uid=%s", c.Cgroup, c.ID, c.PodUID)
	lineWith := func(substr string) bool {
		for _, l := range strings.Split(stdout.String(), "\n") {
			if strings.Contains(l, " openssl ") && strings.Contains(l, "comm=curl") && strings.Contains(l, identity) && strings.Contains(l, substr) {
				return true
			}
		}
		return false
	}
	if !harness.Poll(20*time.Second, func() bool { return lineWith("http_request proto=HTTP/1.1 method=GET path=/mr.txt") }) {
		var mine []string
		for _, l := range strings.Split(stdout.String(), "\n") {
			if strings.Contains(l, c.ID) {
				mine = append(mine, l)
			}
		}
		t.Fatalf("no line of the container's request with %q on stdout; its lines:\n%s", identity, strings.Join(mine, "\n"))
	}
	if !harness.Poll(10*time.Second, func() bool { return lineWith("http_response") }) {
		t.Errorf("no line of the container's response with its identity on stdout:\n%s", tail(stdout.String(), 20))
	}
	if !strings.Contains(stdout.String(), marker) {
		t.Errorf("the response body %q is not on stdout", marker)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if exitErr != nil || strings.Contains(logs.String(), "[ERROR]") {
			t.Errorf("exit %v after SIGINT (an ERROR logged?):\n%s", exitErr, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Errorf("ecaphost run did not exit within 5 s of SIGINT")
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestLateDlopenCaptured: a process that loads libssl with dlopen long
// after its exec (Debian's python3 importing ssl a second after it
// started, its libssl.so.3 a copy no process mapped before, found through
// LD_LIBRARY_PATH; in a cgroup of its own, the capture's filter) is
// captured from its first request: the dynamic
// loader's report of the dlopen (a uprobe on _dl_debug_state,
// kern/sdk/execwatch.c) makes discovery read the process's mappings.
func TestLateDlopenCaptured(t *testing.T) {
	requireOpenSSL(t, "/usr/bin/python3")
	marker := uniq("late-dlopen")
	port := tlspeer.SServer(t, tlspeer.WebRoot(t, map[string]string{"late.txt": marker + "\n"}))
	libDir := t.TempDir()
	data, err := os.ReadFile(systemLibssl(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(libDir, "libssl.so.3"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	// python3 runs in a cgroup of its own, the capture's filter: the
	// events file then holds its traffic only, not the whole node's.
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "a cgroup2 hierarchy: %v", err)
	}
	cg := "/" + uniq("ecaphost-e2e-late")
	if err := os.Mkdir(filepath.Join(mount, cg), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(mount, cg)) })
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h := startHost(t, opensslConfig(t, events, fmt.Sprintf("cgroup = %q", cg), ""))
	script := `import sys, time
time.sleep(1)
import ssl, http.client
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ssl._create_unverified_context())
conn.request("GET", "/late.txt")
print(conn.getresponse().read().decode())
print(open("/proc/self/maps").read())`
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && shift && exec "$@"`, "sh",
		filepath.Join(mount, cg), "/usr/bin/python3", "-c", script, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libDir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), marker) {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), filepath.Join(libDir, "libssl.so.3")) {
		t.Fatalf("python3 did not map the copy of libssl in %s:\n%s", libDir, out)
	}
	pid := cmd.Process.Pid
	waitRecord(t, events, 10*time.Second, "python3's request", func(r record) bool {
		return r.num("pid") == pid && strings.Contains(r.payload(), "GET /late.txt")
	})
	waitRecord(t, events, 5*time.Second, "python3's response", func(r record) bool {
		return r.num("pid") == pid && strings.Contains(r.payload(), marker)
	})
	lat, ok := sinceExec(h.stderr.String(), libDir+"/libssl.so.3")
	t.Logf("dlopen to probed: %v (logged: %v)", lat, ok)
	h.stop()
}

// TestGoTLSIdleNode is issue 15's idle-node case: the gotls module started
// with no target where no Go program runs (kept to an idle container with
// container = "<id>": this machine always runs other Go programs, `go`
// among them), loads without choosing a layout from a target and waits;
// a Go HTTPS server and client started later in that container are
// captured.
func TestGoTLSIdleNode(t *testing.T) {
	requireGoTLS(t, "unshare")
	peers := buildGoPeers(t)
	root := container.NewRootFS(t, "sh", "sleep", "cut")
	data, err := os.ReadFile(peers["local/plain"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Path("/gp-idle"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	gate, open := io.Pipe()
	defer open.Close()
	c := container.Start(t, root, gate, "/bin/sh", "-c",
		`read go; /gp-idle server > /tmp/addr & sleep 1; /gp-idle client https://$(cut -d' ' -f2 /tmp/addr); sleep 1; kill $!`)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	cfg := jsonConfig(t, builtPlugins(t), events, fmt.Sprintf("module \"gotls\" {\n  container = %q\n}\n", c.ID[:12]))
	h := startHost(t, cfg)
	h.waitLog("no Go program with crypto/tls runs yet", 5*time.Second)
	if _, err := open.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"http_request", "http_response"} {
		for _, dir := range []string{"egress", "ingress"} {
			waitRecord(t, events, 20*time.Second, "the container's Go "+kind+" ("+dir+")", func(r record) bool {
				return r.str("module") == "gotls" && r.str("kind") == kind && func() bool { d, _ := r.conn()["direction"].(string); return d == dir }() && inContainer(c)(r)
			})
		}
	}
	h.stop()
}
