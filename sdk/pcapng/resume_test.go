package pcapng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/harness"
)

// section returns a pcapng section holding packets tagged tags.
func section(t *testing.T, tags ...byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	w, err := NewWriter(&buf, Options{Interface: "lo", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := w.WritePacket(now, frame(60+int(tag), tag), 60+int(tag), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestResume: an earlier section, whole or with its last block cut, is
// kept, the cut block removed, and a section appended after it reads back
// with the earlier packets; a file that is not pcapng is refused and left
// alone.
func TestResume(t *testing.T) {
	first := section(t, 1, 2, 3)
	for _, tc := range []struct {
		name     string
		content  []byte
		keep     int64
		wantErr  bool
		previous []string // tags tshark reads before the new section's
		tshark   bool     // check with tshark (2 s a run)
	}{
		{name: "empty", content: nil, keep: 0},
		{name: "whole section", content: first, keep: int64(len(first)), previous: []string{"1", "2", "3"}},
		{name: "last block cut in its body", content: first[:len(first)-10], keep: int64(len(first)) - lastBlockLen(first), previous: []string{"1", "2"}, tshark: true},
		{name: "last block cut in its header", content: append(append([]byte(nil), first...), 6, 0, 0, 0, 0x40), keep: int64(len(first)), previous: []string{"1", "2", "3"}},
		{name: "short text", content: []byte("old"), wantErr: true},
		{name: "first header cut", content: first[:6], keep: 0},
		{name: "text", content: []byte("GET / HTTP/1.1\r\n\r\n"), wantErr: true},
		{name: "damaged block before the last", content: func() []byte {
			b := append([]byte(nil), first...)
			b[len(b)-4]++ // the last packet's trailing length
			return append(b, section(t, 9)...)
		}(), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.pcapng")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			kept, cut, err := Resume(f)
			if tc.wantErr {
				if !errors.Is(err, ErrNotPcapng) {
					t.Errorf("Resume: %v, want ErrNotPcapng", err)
				}
				if b, _ := os.ReadFile(path); !bytes.Equal(b, tc.content) {
					t.Errorf("a refused file was changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kept != tc.keep || kept+cut != int64(len(tc.content)) {
				t.Errorf("kept %d, cut %d; want kept %d of %d", kept, cut, tc.keep, len(tc.content))
			}
			if _, err := f.Write(section(t, 7, 8)); err != nil {
				t.Fatal(err)
			}
			if !tc.tshark {
				return
			}
			if _, err := exec.LookPath("tshark"); err != nil {
				harness.SkipOrFail(t, "needs tshark")
			}
			out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.len").Output()
			want := strings.Join(append(lens(tc.previous), "67", "68"), "\n") + "\n"
			if err != nil || string(out) != want {
				t.Errorf("tshark reads frame lengths %q (%v), want %q", out, err, want)
			}
		})
	}
}

// lastBlockLen is the length of the last block of b, from its trailer.
func lastBlockLen(b []byte) int64 { return int64(binary.LittleEndian.Uint32(b[len(b)-4:])) }

// lens are the frame lengths of packets tagged tags ("1" is 61 bytes).
func lens(tags []string) []string {
	out := make([]string, len(tags))
	for i, tag := range tags {
		out[i] = "6" + tag
	}
	return out
}
