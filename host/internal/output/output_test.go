package output

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/sdk/safefile"
	"github.com/ecaphost/ecaphost/shared/proto/outputv1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protodelim"
)

// gateWriter blocks every Write until release is closed; entered gets a
// value when the first Write starts.
type gateWriter struct {
	harness.Buffer
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGateWriter() *gateWriter {
	return &gateWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.Buffer.Write(p)
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// commands returns a batch of command events with the given payloads.
func commands(payloads ...string) []sdk.Event {
	var evs []sdk.Event
	for i, p := range payloads {
		evs = append(evs, sdk.Event{Time: t0, Module: "bash", Kind: "command", PID: uint32(100 + i), Comm: "bash", Payload: []byte(p)})
	}
	return evs
}

func TestProtobufRoundTrip(t *testing.T) {
	var sb harness.Buffer
	o, err := New("test", &sb, FormatProtobuf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents()
	if err := o.Write(evs); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	r := bufio.NewReader(strings.NewReader(sb.String()))
	var got []sdk.Event
	for {
		var m outputv1.Event
		err := protodelim.UnmarshalFrom(r, &m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(got), err)
		}
		got = append(got, fromProto(&m))
	}

	want := testEvents()
	// Proto3 strings are UTF-8: the encoder replaces what is not.
	want[5].Fields[1].Value = "x\uFFFDy"
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
	for i := range want {
		normalize(&want[i])
		normalize(&got[i])
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func fromProto(m *outputv1.Event) sdk.Event {
	ev := sdk.Event{
		Module: m.GetModule(), Kind: m.GetKind(), PID: m.GetPid(), TID: m.GetTid(), UID: m.GetUid(),
		Comm: m.GetComm(), Payload: m.GetPayload(),
	}
	if m.Time != nil {
		ev.Time = m.Time.AsTime()
	}
	if c := m.GetConnection(); c != nil {
		ev.Conn.ID = c.GetId()
		if ip, ok := netip.AddrFromSlice(c.GetLocalIp()); ok {
			ev.Conn.Local = netip.AddrPortFrom(ip, uint16(c.GetLocalPort()))
		}
		if ip, ok := netip.AddrFromSlice(c.GetRemoteIp()); ok {
			ev.Conn.Remote = netip.AddrPortFrom(ip, uint16(c.GetRemotePort()))
		}
		ev.Conn.Direction = sdk.Direction(c.GetDirection())
	}
	for _, f := range m.GetFields() {
		ev.AddField(f.GetKey(), f.GetValue())
	}
	return ev
}

// normalize makes empty slices nil and times UTC so events compare.
func normalize(ev *sdk.Event) {
	if len(ev.Payload) == 0 {
		ev.Payload = nil
	}
	if len(ev.Fields) == 0 {
		ev.Fields = nil
	}
	ev.Time = ev.Time.UTC()
}

func TestOpenFile(t *testing.T) {
	tests := []struct {
		name     string
		existing *os.FileMode // nil: the file does not exist
	}{
		{name: "new file"},
		{name: "existing private file", existing: ptr(os.FileMode(0o600))},
		{name: "existing file readable by others", existing: ptr(os.FileMode(0o644))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			old := ""
			if tt.existing != nil {
				old = "old line\n"
				if err := os.WriteFile(path, []byte(old), *tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, *tt.existing); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			o, err := OpenFile(path, FormatJSON, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Write(commands("ls")); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("mode = %v, want 0600", perm)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), old) || !strings.Contains(string(data), `"payload":"ls"`) {
				t.Errorf("file holds %q; want the old content then the event", data)
			}
			if o.Name() != "file "+path {
				t.Errorf("Name() = %q", o.Name())
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	groupWritable := filepath.Join(dir, "group")
	if err := os.WriteFile(groupWritable, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(groupWritable, 0o660); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(notDir, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		format  Format
		wantIs  error
		wantSub string
	}{
		{
			name:    "missing directory",
			path:    filepath.Join(dir, "nope", "events.log"),
			format:  FormatText,
			wantIs:  fs.ErrNotExist,
			wantSub: filepath.Join(dir, "nope"),
		},
		{
			name:    "parent is a file",
			path:    filepath.Join(notDir, "events.log"),
			format:  FormatText,
			wantSub: notDir + " is not a directory",
		},
		{
			name:    "path is a directory",
			path:    dir,
			format:  FormatText,
			wantSub: dir,
		},
		{
			name:    "existing file writable by group",
			path:    groupWritable,
			format:  FormatText,
			wantIs:  safefile.ErrUnsafe,
			wantSub: "writable by group or others",
		},
		{
			name:    "symbolic link",
			path:    link,
			format:  FormatText,
			wantIs:  safefile.ErrUnsafe,
			wantSub: "symbolic link",
		},
		{
			name:    "unknown format",
			path:    filepath.Join(dir, "events.log"),
			format:  "yaml",
			wantSub: `unknown output format "yaml"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := OpenFile(tt.path, tt.format, Options{})
			if err == nil {
				o.Close()
				t.Fatal("OpenFile succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantSub) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("err = %q, want it to name %q and %q", err, tt.path, tt.wantSub)
			}
		})
	}
}

func TestDropWhenSinkBlocks(t *testing.T) {
	gw := newGateWriter()
	o, err := New("slow", gw, FormatText, Options{QueueLen: 1, MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The first batch is flushed at once (the queue is then empty) and
	// the sink blocks; the second fills the queue; the third is dropped.
	if err := o.Write(commands("first")); err != nil {
		t.Fatal(err)
	}
	<-gw.entered
	if err := o.Write(commands("second")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := o.Write(commands("third", "fourth")); !errors.Is(err, ErrDropped) {
		t.Fatalf("Write to a full queue = %v, want ErrDropped", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Write blocked for %v", d)
	}
	if got := o.Dropped(); got != 2 {
		t.Errorf("Dropped() = %d, want 2", got)
	}

	close(gw.release)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	out := gw.String()
	if !strings.Contains(out, "command: first\n") || !strings.Contains(out, "command: second\n") ||
		strings.Contains(out, "third") || strings.Contains(out, "fourth") {
		t.Errorf("output:\n%s", out)
	}
	if o.Written() != 2 || o.Dropped() != 2 {
		t.Errorf("Written, Dropped = %d, %d; want 2, 2", o.Written(), o.Dropped())
	}
}

func TestCloseDrainsAndFlushes(t *testing.T) {
	gw := newGateWriter()
	o, err := New("test", gw, FormatJSON, Options{QueueLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(commands("0")); err != nil {
		t.Fatal(err)
	}
	<-gw.entered // the sink now blocks: the batches below stay queued
	for i := 1; i < 50; i++ {
		if err := o.Write(commands("a", "b")); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error)
	go func() { closed <- o.Close() }()
	close(gw.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(gw.String(), "\n"); n != 99 {
		t.Errorf("%d lines written, want 99", n)
	}
	if o.Written() != 99 || o.Dropped() != 0 {
		t.Errorf("Written, Dropped = %d, %d; want 99, 0", o.Written(), o.Dropped())
	}
	if err := o.Write(commands("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestFlushWhenIdle checks that an event reaches the sink without Close
// once the queue is empty, as `tail -f` needs.
func TestFlushWhenIdle(t *testing.T) {
	var sb harness.Buffer
	o, err := New("test", &sb, FormatText, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Write(commands("ls")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(sb.String(), "command: ls\n") {
		if time.Now().After(deadline) {
			t.Fatal("the event was not flushed")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWriteCopiesBatch(t *testing.T) {
	gw := newGateWriter()
	o, err := New("test", gw, FormatText, Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch := commands("first")
	batch[0].AddField("k", "v")
	if err := o.Write(batch); err != nil {
		t.Fatal(err)
	}
	<-gw.entered
	batch2 := commands("keep")
	batch2[0].AddField("k", "v")
	if err := o.Write(batch2); err != nil {
		t.Fatal(err)
	}
	copy(batch2[0].Payload, "XXXX") // the caller reuses its buffers
	batch2[0].Fields[0].Value = "changed"
	close(gw.release)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if out := gw.String(); !strings.Contains(out, "k=v: keep\n") {
		t.Errorf("output:\n%s", out)
	}
}

func TestWriteError(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	tests := []struct {
		name  string
		batch []sdk.Event
	}{
		{name: "flush fails", batch: commands("a", "b", "c")},
		{name: "buffered write fails", batch: commands(big, big, big)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := New("broken", failingWriter{}, FormatText, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Write(tt.batch); err != nil {
				t.Fatal(err)
			}
			err = o.Close()
			if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "broken") {
				t.Errorf("Close = %v, want an error naming the output and wrapping %v", err, errDiskFull)
			}
			if o.Dropped() != 3 || o.Written() != 0 {
				t.Errorf("Written, Dropped = %d, %d; want 0, 3", o.Written(), o.Dropped())
			}
			if !errors.Is(o.Err(), errDiskFull) {
				t.Errorf("Err() = %v", o.Err())
			}
		})
	}
}

// fastAndSlow returns a group of two text outputs: a to fast, and b to
// slow, which blocks until released, with a queue of one batch.
func fastAndSlow(t *testing.T) (g Group, a, b *Writer, fast *harness.Buffer, slow *gateWriter) {
	t.Helper()
	fast, slow = &harness.Buffer{}, newGateWriter()
	a, err := New("fast", fast, FormatText, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err = New("slow", slow, FormatText, Options{QueueLen: 1, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return Group{a, b}, a, b, fast, slow
}

func TestGroup(t *testing.T) {
	g, a, b, fast, slow := fastAndSlow(t)
	for _, p := range []string{"one", "two", "three"} {
		err := g.Write(commands(p))
		if p == "three" {
			if !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "slow") {
				t.Errorf("third Write = %v, want ErrDropped from slow", err)
			}
		} else if err != nil {
			t.Fatalf("Write %s: %v", p, err)
		}
		if p == "one" {
			<-slow.entered
		}
	}
	close(slow.release)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(fast.String(), "\n"); n != 3 || a.Dropped() != 0 {
		t.Errorf("fast output: %d lines, %d dropped; want 3, 0", n, a.Dropped())
	}
	if n := strings.Count(slow.String(), "\n"); n != 2 || b.Dropped() != 1 {
		t.Errorf("slow output: %d lines, %d dropped; want 2, 1", n, b.Dropped())
	}
	if err := g.Write(commands("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

// TestGroupWriteOwned: a batch handed over is not copied, and comes back
// (release, once) only when every output has formatted it, also when an
// output dropped it or was closed.
func TestGroupWriteOwned(t *testing.T) {
	g, _, _, _, slow := fastAndSlow(t)
	released := make(chan string, 8)
	own := func(p string) ([]sdk.Event, func()) {
		return commands(p), func() { released <- p }
	}
	one, rel := own("one")
	if err := g.WriteOwned(one, rel); err != nil {
		t.Fatal(err)
	}
	<-slow.entered // slow formatted "one" and blocks writing it
	two, rel := own("two")
	if err := g.WriteOwned(two, rel); err != nil {
		t.Fatal(err)
	}
	three, rel := own("three")
	if err := g.WriteOwned(three, rel); !errors.Is(err, ErrDropped) {
		t.Fatalf("third WriteOwned = %v, want ErrDropped from slow", err)
	}
	// "two" waits in slow's queue: it must not come back yet. "one" and
	// "three" (dropped by slow, formatted by fast) must.
	var early []string
	for len(early) < 2 {
		select {
		case p := <-released:
			early = append(early, p)
		case <-time.After(5 * time.Second):
			t.Fatalf("released only %v", early)
		}
	}
	slices.Sort(early)
	if !slices.Equal(early, []string{"one", "three"}) {
		t.Fatalf("released %v while slow still held two; want one, three", early)
	}
	select {
	case p := <-released:
		t.Fatalf("%q released while an output still holds it", p)
	case <-time.After(50 * time.Millisecond):
	}
	two[0].Payload = []byte("changed") // the caller's batch is what slow writes
	close(slow.release)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if p := <-released; p != "two" {
		t.Errorf("released %q, want two", p)
	}
	if out := slow.String(); !strings.Contains(out, "command: changed") {
		t.Errorf("slow output does not show the batch it was handed (no copy):\n%s", out)
	}
	empty := false
	if err := (Group{}).WriteOwned(commands("x"), func() { empty = true }); err != nil || !empty {
		t.Errorf("an empty group: err %v, released %v; want nil, true", err, empty)
	}
	closed := false
	if err := g.WriteOwned(commands("late"), func() { closed = true }); !errors.Is(err, ErrClosed) || !closed {
		t.Errorf("after Close: err %v, released %v; want ErrClosed, true", err, closed)
	}
}

func TestConcurrentWriters(t *testing.T) {
	var sb harness.Buffer
	o, err := New("test", &sb, FormatJSON, Options{QueueLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				o.Write(commands("x", "y"))
			}
		})
	}
	closeDone := make(chan error)
	go func() { wg.Wait(); closeDone <- o.Close() }()
	if err := <-closeDone; err != nil {
		t.Fatal(err)
	}
	lines := uint64(strings.Count(sb.String(), "\n"))
	if lines+o.Dropped() != 1600 || lines != o.Written() {
		t.Errorf("%d lines, Written %d, Dropped %d; want lines+Dropped = 1600", lines, o.Written(), o.Dropped())
	}
}

func TestHostRecords(t *testing.T) {
	tests := []struct {
		name string
		ev   sdk.Event
		want string
	}{
		{
			name: "gap",
			ev:   Gap(t0, "bash", "plugin crashed", sdk.Field{Key: "restarts", Value: "2"}),
			want: "2026-11-25T21:10:00.123Z bash host.gap reason=\"plugin crashed\" restarts=2\n",
		},
		{
			name: "notice",
			ev:   Notice(t0, "openssl", "restarted"),
			want: "2026-11-25T21:10:00.123Z openssl host.notice message=restarted\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendText(nil, &tt.ev, nil)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func BenchmarkOutputWrite(b *testing.B) {
	o, err := New("discard", io.Discard, FormatJSON, Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := testEvents()[:3]
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		out      config.Output
		wantName string
		wantErr  string
	}{
		{name: "stdout", out: config.Output{Kind: config.OutputStdout, Format: config.FormatJSON}, wantName: "stdout"},
		{
			name:     "file",
			out:      config.Output{Kind: config.OutputFile, Path: filepath.Join(dir, "e.bin"), Format: config.FormatProtobuf},
			wantName: "file " + filepath.Join(dir, "e.bin"),
		},
		{name: "unknown kind", out: config.Output{Kind: "syslog", Format: config.FormatText}, wantErr: `unknown kind "syslog"`},
		{name: "unknown format", out: config.Output{Kind: config.OutputStdout, Format: "yaml"}, wantErr: `unknown output format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sb harness.Buffer
			w, err := Open(tt.out, &sb, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(commands("ls")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Name() != tt.wantName || w.Written() != 1 {
				t.Errorf("Name, Written = %q, %d; want %q, 1", w.Name(), w.Written(), tt.wantName)
			}
		})
	}
}

// fullFile is a file that takes room bytes more, then fails as a full
// disk does: a short write, then ENOSPC.
type fullFile struct {
	*os.File
	mu   sync.Mutex
	room int
}

func (f *fullFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(p), f.room)
	n, err := f.File.Write(p[:n])
	f.room -= n
	if err == nil && n < len(p) {
		err = syscall.ENOSPC
	}
	return n, err
}

func (f *fullFile) setRoom(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.room = n
}

// TestFullDiskKeepsEventsWhole: writes to a file that fills up in the
// middle of an event leave only whole events in it, count exactly what
// was written and dropped, and log the failure once when it starts and
// once when it ends.
func TestFullDiskKeepsEventsWhole(t *testing.T) {
	fh, err := os.OpenFile(filepath.Join(t.TempDir(), "e.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sink := &fullFile{File: fh, room: 1000}
	var logs harness.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	o, err := New("file e.jsonl", sink, FormatJSON, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	const batches, perBatch = 30, 5
	for i := range batches {
		if i == 20 {
			waitFor(t, func() bool { return o.Dropped() > 0 })
			sink.setRoom(1 << 20) // room again
		}
		evs := commands(slices.Repeat([]string{strings.Repeat("x", 37)}, perBatch)...)
		if err := o.Write(evs); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return o.Written()+o.Dropped() == uint64((i+1)*perBatch) })
	}
	if err := o.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close: %v, want the first write error", err)
	}
	data, err := os.ReadFile(fh.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Errorf("line %d is cut: %q", i+1, l)
		}
	}
	if o.Written() != uint64(len(lines)) || o.Written()+o.Dropped() != batches*perBatch || o.Dropped() == 0 {
		t.Errorf("written %d, dropped %d; the file holds %d events of %d", o.Written(), o.Dropped(), len(lines), batches*perBatch)
	}
	if n := strings.Count(logs.String(), "output failing"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "output writing again") || !strings.Contains(logs.String(), fmt.Sprintf("events_dropped=%d", o.Dropped())) {
		t.Errorf("its end was not logged with the count of %d:\n%s", o.Dropped(), logs.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !harness.Poll(5*time.Second, cond) {
		t.Fatal("condition not met within 5s")
	}
}
