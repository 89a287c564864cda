package output

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
)

// outputFiles returns the files of the output path: rotated ones oldest
// first, then path. Each must be 0600.
func outputFiles(t *testing.T, path string) []string {
	t.Helper()
	rotated, _ := filepath.Glob(path + ".2*")
	sort.Strings(rotated)
	files := append(rotated, path)
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	return files
}

// pids reads the JSON lines of files and returns each event's pid in
// order; a line that is not a whole JSON object fails the test.
func pids(t *testing.T, files ...string) []int {
	t.Helper()
	var out []int
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct{ PID int }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: a line that is not a whole event (%v): %.60q", file, err, sc.Text())
			}
			out = append(out, rec.PID)
		}
		f.Close()
	}
	return out
}

func writeEvents(t *testing.T, w *Writer, from, to int, payload []byte) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := w.Write([]sdk.Event{{Time: time.Unix(1, 0), Module: "m", Kind: "k", PID: uint32(i), Payload: payload}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRotateBySize: with keep = 2 the newest events are in at most three
// files, 0600, every line whole, none missing between the oldest kept and
// the last.
func TestRotateBySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	w, err := OpenFile(path, FormatJSON, Options{Rotate: &config.Rotate{MaxBytes: 64 << 10, Keep: 2}})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	const n = 200 // about 800 KiB: a dozen rotations
	for i := 1; i <= n; i += 10 {
		writeEvents(t, w, i, i+9, payload)
		time.Sleep(time.Millisecond) // lets the writer flush in several writes
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := outputFiles(t, path)
	if len(files) != 3 {
		t.Fatalf("files %v, want two rotated and the current", files)
	}
	for _, f := range files {
		// A file passes the limit only by the one buffer that started it.
		if fi, _ := os.Stat(f); fi.Size() > 64<<10+writeChunk+4096 {
			t.Errorf("%s is %d bytes, past max_mib and a write", f, fi.Size())
		}
	}
	got := pids(t, files...)
	if len(got) == 0 || got[len(got)-1] != n {
		t.Fatalf("last event %v, want %d", got[len(got)-1:], n)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("event %d follows %d: events lost between kept files", got[i], got[i-1])
		}
	}
	if w.Written() != n || w.Dropped() != 0 {
		t.Errorf("written %d dropped %d", w.Written(), w.Dropped())
	}
}

func TestRotateByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := openFileSink(path, &config.Rotate{MaxAge: time.Hour, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	s.opened = now
	for range 3 {
		if _, err := s.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := outputFiles(t, path)
	want := []string{path + ".20260102T040405.000Z", path + ".20260102T050405.000Z", path}
	if len(files) != 3 || files[0] != want[0] || files[1] != want[1] {
		t.Errorf("files %v, want %v", files, want)
	}
}

// TestReopenAfterMove is logrotate's create mode: mv, then SIGHUP.
func TestReopenAfterMove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	w, err := OpenFile(path, FormatJSON, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeEvents(t, w, 1, 50, []byte("x"))
	moved := filepath.Join(dir, "events.jsonl.1")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, w, 51, 60, []byte("x")) // still to the moved file, or the new one after Reopen
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, w, 61, 100, []byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := pids(t, moved), pids(t, path)
	all := append(old, cur...)
	if len(all) != 100 {
		t.Fatalf("%d events in the two files, want 100", len(all))
	}
	for i, p := range all {
		if p != i+1 {
			t.Fatalf("event %d at %d: lost or reordered across the reopen", p, i+1)
		}
	}
	if len(cur) < 40 {
		t.Errorf("the new file has %d events, want at least the 40 written after Reopen", len(cur))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v", fi.Mode().Perm())
	}
}

func TestRotatedNamesOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.log")
	for _, name := range []string{"e.log.20260101T000000.000Z", "e.log.20260101T000001.000Z", "e.log.bak", "e.log.2026", "other.20260101T000000.000Z"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := openFileSink(path, &config.Rotate{MaxBytes: 1, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.prune(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range left {
		left[i] = filepath.Base(left[i])
	}
	sort.Strings(left)
	want := []string{"e.log", "e.log.2026", "e.log.20260101T000001.000Z", "e.log.bak", "other.20260101T000000.000Z"}
	if len(left) != len(want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("left %v, want %v", left, want)
		}
	}
}
