package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
	"github.com/ecaphost/ecaphost/sdk/harness/wireshark"
)

// hostileUser is the unprivileged local user the tests play: made (a
// system user without home or shell) when it does not exist.
const hostileUser = "ecaphost-e2e"

// otherUser returns the credential of hostileUser, creating the user.
func otherUser(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.SkipOrFail(t, "needs root to act as another user")
	}
	u, err := user.Lookup(hostileUser)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", hostileUser).CombinedOutput()
		if err != nil {
			harness.SkipOrFail(t, "creating user %s: %v: %s", hostileUser, err, out)
		}
		if u, err = user.Lookup(hostileUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// asUser runs a shell command as cred and fails the test if it fails.
func asUser(t *testing.T, cred *syscall.Credential, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as %s: %s: %v: %s", hostileUser, script, err, out)
	}
}

// sharedDir is a directory like /tmp: root's, sticky, everyone may create
// names in it.
func sharedDir(t *testing.T) string {
	t.Helper()
	// Not under t.TempDir(), whose parent only root may enter.
	d, err := os.MkdirTemp("", "ecaphost-e2e-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFilesOtherUsersControlAreRefused: in a shared sticky directory,
// another user points a symbolic link at a root file under the name of an
// output, a key log and a pcapng file, and pre-creates an output file
// (mode 0666) that would let them read the capture; an output is a FIFO
// (which would block the host until a reader came). validate and run
// refuse each, naming the file and the reason, and the target is left as
// it was.
func TestFilesOtherUsersControlAreRefused(t *testing.T) {
	requireOpenSSL(t)
	cred := otherUser(t)
	shared := sharedDir(t)
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"events.jsonl", "keys.log", "out.pcapng"} {
		asUser(t, cred, fmt.Sprintf("ln -s %s %s", target, filepath.Join(shared, name)))
	}
	precreated := filepath.Join(shared, "mine.jsonl")
	asUser(t, cred, fmt.Sprintf("umask 0 && : > %s && chmod 666 %s", precreated, precreated))
	safeEvents := filepath.Join(t.TempDir(), "events.jsonl")
	fifo := filepath.Join(t.TempDir(), "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, config, file, reason string
	}{
		{"output symlink", bashConfig(t, filepath.Join(shared, "events.jsonl"), ""), filepath.Join(shared, "events.jsonl"), "symbolic link"},
		{"output of another user", bashConfig(t, precreated, ""), precreated, "owned by uid " + strconv.Itoa(int(cred.Uid))},
		{"output FIFO", bashConfig(t, fifo, ""), fifo, "named pipe"},
		{"key log symlink", opensslConfig(t, safeEvents, "", fmt.Sprintf("mode = \"keylog\"\n    keylog_file = %q", filepath.Join(shared, "keys.log"))),
			filepath.Join(shared, "keys.log"), "symbolic link"},
		{"pcapng symlink", opensslConfig(t, safeEvents, "", fmt.Sprintf("mode = \"pcap\"\n    pcap_file = %q\n    ifname = \"lo\"", filepath.Join(shared, "out.pcapng"))),
			filepath.Join(shared, "out.pcapng"), "symbolic link"},
	} {
		for _, cmd := range []string{"validate", "run"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				code, out := ecaphost(t, 30*time.Second, cmd, tc.config)
				if code != 2 || !strings.Contains(out, "refusing to write "+tc.file) || !strings.Contains(out, tc.reason) {
					t.Errorf("exit %d; want 2 and a refusal of %s saying %q:\n%s", code, tc.file, tc.reason, out)
				}
				if strings.Contains(out, "capturing") {
					t.Errorf("the host captured:\n%s", out)
				}
			})
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the links' target now holds %q", b)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o644 {
		t.Errorf("the links' target now has mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(precreated); st.Size() != 0 || st.Mode().Perm() != 0o666 {
		t.Errorf("the other user's file: %d bytes, mode %v; want it untouched", st.Size(), st.Mode().Perm())
	}
}

// TestOpenSSLPcapRestartAppends: the pcap plugin is killed (SIGKILL)
// after one request and restarted; the pcapng file keeps the packets of
// before the kill, gets those of after, and tshark reads both requests
// decrypted from it alone.
func TestOpenSSLPcapRestartAppends(t *testing.T) {
	requireOpenSSL(t, "tshark")
	root := webRoot(t, map[string]string{"one.txt": "one\n", "two.txt": "two\n"})
	port := tlspeer.SServer(t, root)
	dir := t.TempDir()
	pcap, events := filepath.Join(dir, "out.pcapng"), filepath.Join(dir, "events.jsonl")
	h := startHost(t, opensslConfig(t, events, "", fmt.Sprintf("mode = \"pcap\"\n    pcap_file = %q\n    ifname = \"lo\"\n    port = %d", pcap, port)))
	url := func(f string) string { return fmt.Sprintf("https://127.0.0.1:%d/%s", port, f) }

	pid1, _ := runCommand(t, "curl", "-sSk", url("one.txt"))
	waitRecord(t, events, 10*time.Second, "the first session's keys", tlsKeys(pid1))
	// Packets wait a second for their keys, then reach the file.
	if !harness.Poll(10*time.Second, func() bool {
		return slices.Contains(wireshark.Fields(t, pcap, nil, "http.request", "http.request.uri"), "/one.txt")
	}) {
		t.Fatalf("the first request never reached %s", pcap)
	}
	beforeKill := wireshark.Fields(t, pcap, nil, "", "frame.time_epoch", "frame.len")
	pids := h.pluginPIDs("openssl")
	if len(pids) != 1 {
		t.Fatalf("want one openssl plugin process, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, events, 30*time.Second, "the restart notice", func(r record) bool {
		return r.str("module") == "openssl" && r.str("kind") == "host.notice"
	})
	pid2, _ := runCommand(t, "curl", "-sSk", url("two.txt"))
	waitRecord(t, events, 10*time.Second, "the second session's keys", tlsKeys(pid2))
	// Its packets wait a second for keys: let them reach the file before
	// the stop (bounded so that SIGINT ends the host within 2 s) rather
	// than test how fast a loaded machine closes the file.
	if !harness.Poll(10*time.Second, func() bool {
		return slices.Contains(wireshark.Fields(t, pcap, nil, "http.request", "http.request.uri"), "/two.txt")
	}) {
		t.Fatalf("the second request never reached %s", pcap)
	}
	h.stop()

	got := wireshark.Fields(t, pcap, nil, "http.request", "http.request.uri", "frame.comment")
	want := []string{fmt.Sprintf("/one.txt\tpid=%d comm=curl", pid1), fmt.Sprintf("/two.txt\tpid=%d comm=curl", pid2)}
	if !slices.Equal(got, want) {
		t.Errorf("tshark read %q from the pcapng written across the restart, want %q", got, want)
	}
	all := wireshark.Fields(t, pcap, nil, "", "frame.time_epoch", "frame.len")
	if len(all) <= len(beforeKill) || !slices.Equal(all[:len(beforeKill)], beforeKill) {
		t.Errorf("the %d packets in the file before the kill are not the first of the %d after", len(beforeKill), len(all))
	}
	if !strings.Contains(h.stderr.String(), "appending a new section to the pcapng file") {
		t.Errorf("the restarted plugin did not say it appended:\n%s", h.stderr.String())
	}
}

// TestFullDiskOutput: the file output is on a 2 MiB tmpfs that fills in
// the middle of a capture. The failure is logged within a second, its end
// (room made again) is logged with the count dropped, no record in the
// file is cut, and the exit summary's count is the file's.
func TestFullDiskOutput(t *testing.T) {
	requireCapture(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "ecaphost-e2e", mnt).CombinedOutput(); err != nil {
		harness.SkipOrFail(t, "mounting a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	events := filepath.Join(mnt, "events.jsonl")
	h := startHost(t, bashConfig(t, events, ""))
	sh := startShell(t)
	before := uniq("before-full")
	sh.run("echo " + before)
	waitRecord(t, events, 10*time.Second, "a command before the disk fills", isCommand(sh.pid(), before))

	fill := filepath.Join(mnt, "fill")
	_ = exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=4k").Run() // ends with "no space left"
	var markers []string
	var typed []time.Time
	for i := range 20 {
		markers = append(markers, fmt.Sprintf("%s-%d", uniq("while-full"), i))
		typed = append(typed, time.Now())
		sh.run("echo " + markers[i] + "-" + strings.Repeat("x", 200))
	}
	h.waitLog("output failing", 10*time.Second)
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	after := uniq("after-full")
	sh.run("echo " + after)
	waitRecord(t, events, 10*time.Second, "a command once there is room again", isCommand(sh.pid(), after))
	h.waitLog("output writing again", 10*time.Second)
	h.stop()

	log := h.stderr.String()
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(log, "output failing") != 1 {
		t.Errorf("the failure was logged %d times, want once", strings.Count(log, "output failing"))
	}
	// The first record lost is the first command whose record is not in
	// the file: the failure must be logged within a second of it.
	logged := regexp.MustCompile(`(\S+) \[ERROR\] ecaphost: output failing`).FindStringSubmatch(log)
	if logged == nil {
		t.Fatalf("no timestamped failure line:\n%s", log)
	}
	loggedAt, err := time.Parse("2006-01-02T15:04:05.000Z0700", logged[1])
	if err != nil {
		t.Fatal(err)
	}
	for i, mk := range markers {
		if !strings.Contains(string(data), mk) {
			t.Logf("the first record lost was typed %v before the failure was logged", loggedAt.Sub(typed[i]).Round(time.Millisecond))
			if loggedAt.Sub(typed[i]) > time.Second {
				t.Errorf("the failure was logged %v after the command whose record it lost", loggedAt.Sub(typed[i]))
			}
			break
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		var r record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Errorf("line %d of %d is not a whole record (%v): %.80q", i+1, len(lines), err, l)
		}
	}
	m := regexp.MustCompile(`output file \S+: (\d+) events written, (\d+) dropped`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no output summary:\n%s", log)
	}
	if written, dropped := m[1], m[2]; written != strconv.Itoa(len(lines)) || dropped == "0" {
		t.Errorf("summary: %s written, %s dropped; the file holds %d records, and some must have been dropped", written, dropped, len(lines))
	}
	if !regexp.MustCompile(`output writing again: .*events_dropped=` + m[2]).MatchString(log) {
		t.Errorf("the end of the failure was not logged with the %s dropped:\n%s", m[2], log)
	}
}
