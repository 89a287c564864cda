package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness/tlspeer"
)

// requestMarkers reads the JSON lines of files in order and returns the
// X-E2E header of each http_request; a line that is not a whole JSON
// object (an event split across files) fails the test.
func requestMarkers(t *testing.T, files ...string) []string {
	t.Helper()
	var out []string
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: a line that is not a whole event (%v): %.80q", file, err, sc.Text())
			}
			if r.str("kind") == "http_request" {
				out = append(out, r.field("header.X-E2e"))
			}
		}
		f.Close()
	}
	return out
}

func modTime(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func mode0600(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

// lines returns the lines of files in order; each must be a whole JSON
// event (none split across files).
func jsonLines(t *testing.T, files ...string) []string {
	t.Helper()
	var out []string
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if l == "" {
				continue
			}
			if !strings.HasSuffix(l, "\n") || !json.Valid([]byte(l)) {
				t.Fatalf("%s: a line that is not a whole event: %.80q", file, l)
			}
			out = append(out, l)
		}
	}
	return out
}

// TestFileRotationAndSIGHUP: a file output rotating at 1 MiB with keep = 2
// while curl fetches 300 KiB responses, beside a file output that does not
// rotate: at most three files, all 0600, every line a whole event, and
// together exactly the newest lines of the other output. Then logrotate's
// create mode: mv the file, SIGHUP, and the next events go to a new file
// of that name, nothing lost.
func TestFileRotationAndSIGHUP(t *testing.T) {
	requireOpenSSL(t)
	root := tlspeer.WebRoot(t, map[string]string{"big.txt": strings.Repeat("0123456789abcdef", 300<<6)}) // 300 KiB
	port := tlspeer.SServer(t, root)
	dir := t.TempDir()
	events, all := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "all.jsonl")
	cfg := writeConfig(t, fmt.Sprintf(`plugin_dir = %q
output "file" {
  path   = %q
  format = "json"
  rotate {
    max_mib = 1
    keep    = 2
  }
}
output "file" {
  path   = %q
  format = "json"
}
module "openssl" {
  comm = "curl"
}
`, builtPlugins(t), events, all))
	h := startHost(t, cfg)

	var last int
	for range 12 {
		last = curlMarked(t, port, "big.txt", uniq("rot"))
	}
	// The last event written is the last response: the file it went to
	// is the current one.
	waitRecord(t, events, 20*time.Second, "the last response", httpMessage("http_response", last, func(record) bool { return true }))
	rotated, _ := filepath.Glob(events + ".2*")
	sort.Strings(rotated)
	files := append(rotated, events)
	if len(rotated) != 2 {
		t.Fatalf("files %v: want 2 rotated and the current (3.6 MiB through a 1 MiB limit, keep = 2)", files)
	}
	mode0600(t, files...)

	// logrotate: mv, then SIGHUP.
	moved := filepath.Join(dir, "events.moved")
	if err := os.Rename(events, moved); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.waitLog("SIGHUP: file outputs reopened", 10*time.Second)
	marker := uniq("after-hup")
	curlMarked(t, port, "big.txt", marker)
	h.stop()

	mode0600(t, events)
	if got := requestMarkers(t, events); len(got) == 0 || got[len(got)-1] != marker {
		t.Errorf("the file made after SIGHUP holds requests %v, want the one made after it last", got)
	}
	// Other curls on the machine (comm = "curl") may have made the new
	// file rotate too: order the files by when they were last written.
	rotated, _ = filepath.Glob(events + ".2*")
	files = append(append(rotated, moved), events)
	sort.SliceStable(files, func(i, j int) bool { return modTime(t, files[i]).Before(modTime(t, files[j])) })
	kept := jsonLines(t, files...)
	ref := jsonLines(t, all)
	if len(kept) == 0 || len(kept) >= len(ref) {
		t.Fatalf("%d lines kept of %d: rotation removed nothing?", len(kept), len(ref))
	}
	tail := ref[len(ref)-len(kept):]
	for i := range kept {
		if kept[i] != tail[i] {
			t.Fatalf("line %d of the rotated files differs from the output beside them: lost, split or reordered:\n%.100q\n%.100q", i, kept[i], tail[i])
		}
	}
}
