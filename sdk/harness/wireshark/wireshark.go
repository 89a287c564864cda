// Package wireshark helps tests check what ecaphost writes against
// Wireshark: an independent loopback recording with tshark, reading fields
// out of a capture, and reading an NSS key log.
package wireshark

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// Capture is `tshark -i lo -w FILE -f "tcp port PORT"`: a recording of
// loopback made independently of ecaphost.
type Capture struct {
	cmd    *exec.Cmd
	file   string
	stderr harness.Buffer
}

// Start records the loopback traffic of port into a file, returning once
// tshark says it captures. The process is killed when the test ends.
func Start(t testing.TB, port int) *Capture {
	t.Helper()
	return StartFilter(t, fmt.Sprintf("tcp port %d", port))
}

// StartFilter is Start for the loopback traffic the capture filter (pcap
// syntax, e.g. "tcp port 443 or tcp port 8443") keeps.
func StartFilter(t testing.TB, filter string) *Capture {
	t.Helper()
	c := &Capture{file: filepath.Join(t.TempDir(), "lo.pcapng")}
	c.cmd = exec.Command("tshark", "-i", "lo", "-w", c.file, "-f", filter)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.stderr.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start capturing: %s", c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// Stop ends the recording, after the last packets, and returns its file.
// It first waits a second: dumpcap reads loopback through libpcap's
// TPACKET_V3 ring, whose blocks reach it only when full or retired by
// its 250 ms read timeout, and packets of a block not yet retired when
// SIGINT comes are never written. With 200 ms, the last request of
// TestKeylogCurl (CI of 5fb7854) and of
// TestKeylogSessionOlderThanModuleInCopy (CI of 25dc753) was missing
// from the file, so tshark decrypted nothing of it although the keys
// were right.
func (c *Capture) Stop(t testing.TB) string {
	t.Helper()
	time.Sleep(time.Second)
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			// Interrupted, tshark exits non-zero; the file says the rest.
			t.Logf("tshark: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tshark did not stop: %s", c.stderr.String())
	}
	return c.file
}

// Fields reads file with tshark (opts, then -Y filter) and returns the
// non-empty lines of the fields.
func Fields(t testing.TB, file string, opts []string, filter string, fields ...string) []string {
	t.Helper()
	args := append(append([]string{"-r", file}, opts...), "-Y", filter, "-T", "fields")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// KeyLogLines reads an NSS key log into its lines by client random;
// comments are left out.
func KeyLogLines(t testing.TB, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && !strings.HasPrefix(f[0], "#") {
			out[f[1]] = append(out[f[1]], sc.Text())
		}
	}
	return out
}
