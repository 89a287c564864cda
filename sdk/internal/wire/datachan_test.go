package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// TestFramesRoundTrip: batches written as frames come back with their
// sequence, counters and packed records, then the end.
func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	fw := &FrameWriter{W: &buf}
	// The framing does not look into the packed records: any bytes do.
	evs := [][]byte{[]byte("one record"), bytes.Repeat([]byte{0, 0xff}, 5000), {}}
	var want [][]byte
	for i := range evs {
		b := &pb.EventBatch{Sequence: uint64(i + 1), Losses: []*pb.Counter{{Name: "lost", Value: uint64(i)}}}
		b.Packed = evs[i]
		want = append(want, b.Packed)
		if err := fw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Write(&pb.EventBatch{Sequence: 9}); err != nil { // counters only
		t.Fatal(err)
	}
	if err := fw.End(); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(&buf)
	for i := range evs {
		b, err := fr.Next()
		if err != nil || b == nil {
			t.Fatalf("frame %d: %v, %v", i, b, err)
		}
		if b.GetSequence() != uint64(i+1) || len(b.GetLosses()) != 1 || b.GetLosses()[0].GetValue() != uint64(i) ||
			!bytes.Equal(b.GetPacked(), want[i]) {
			t.Fatalf("frame %d: sequence %d losses %v, %d packed bytes", i, b.GetSequence(), b.GetLosses(), len(b.GetPacked()))
		}
	}
	if b, err := fr.Next(); err != nil || b == nil || b.GetSequence() != 9 || len(b.GetPacked()) != 0 {
		t.Fatalf("counters-only frame: %v, %v", b, err)
	}
	if b, err := fr.Next(); b != nil || err != nil {
		t.Fatalf("end frame: %v, %v; want nil, nil", b, err)
	}
}

// TestFramesBroken: a channel cut short or a frame past the bounds is an
// error that says so, never a batch.
func TestFramesBroken(t *testing.T) {
	var good bytes.Buffer
	b := &pb.EventBatch{Sequence: 1}
	b.Packed = []byte("some packed records")
	if err := (&FrameWriter{W: &good}).Write(b); err != nil {
		t.Fatal(err)
	}
	head := func(nm, np uint32) []byte {
		h := make([]byte, 8)
		binary.LittleEndian.PutUint32(h, nm)
		binary.LittleEndian.PutUint32(h[4:], np)
		return h
	}
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"nothing: the plugin died", nil, "unexpected EOF"},
		{"cut in the header", good.Bytes()[:5], "unexpected EOF"},
		{"cut in the records", good.Bytes()[:good.Len()-3], "cut short"},
		{"records over the bound", head(2, MaxFramePacked+1), "over the bounds"},
		{"batch over the bound", head(MaxFrameMeta+1, 0), "over the bounds"},
		{"not a batch", append(head(3, 0), 0xff, 0xff, 0xff), "malformed frame"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewFrameReader(bytes.NewReader(tc.raw)).Next()
			if b != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("next = %v, %v; want an error with %q", b, err, tc.want)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrame) {
				t.Errorf("error %v is neither a cut channel nor a malformed frame", err)
			}
		})
	}
}

// TestFrameReaderBacklogLimit: on a data channel the reader knows how much
// can wait before the plugin blocks (the send buffer NewDataChannel asked,
// doubled by the kernel, plus its read-ahead), and its backlog counts what
// waits; a reader on anything but a socket knows no limit.
func TestFrameReaderBacklogLimit(t *testing.T) {
	host, plugin, err := NewDataChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	defer plugin.Close()
	fr := NewFrameReader(host)
	if fr.Limit <= FrameReadAhead {
		t.Fatalf("limit %d, want the socket's buffer plus %d", fr.Limit, FrameReadAhead)
	}
	if os.Geteuid() == 0 && fr.Limit != 2*dataSocketBuffer+FrameReadAhead {
		// As root SO_SNDBUFFORCE applies; the kernel doubles it.
		t.Errorf("limit %d as root, want %d", fr.Limit, 2*dataSocketBuffer+FrameReadAhead)
	}
	chunk := make([]byte, 1<<20)
	if _, err := plugin.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if n := fr.Backlog(); n != len(chunk) {
		t.Errorf("backlog %d after a write of %d", n, len(chunk))
	}
	if NewFrameReader(&bytes.Buffer{}).Limit != 0 {
		t.Error("a reader on a bytes.Buffer has a limit")
	}
}
