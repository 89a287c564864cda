package sdk

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
	fw := &frameWriter{w: &buf}
	evs := packedEvents()
	var want [][]byte
	for i := range evs {
		b := &pb.EventBatch{Sequence: uint64(i + 1), Losses: []*pb.Counter{{Name: "lost", Value: uint64(i)}}}
		b.Packed = appendPacked(nil, &evs[i], evs[i].Payload, nil)
		want = append(want, b.Packed)
		if err := fw.write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.write(&pb.EventBatch{Sequence: 9}); err != nil { // counters only
		t.Fatal(err)
	}
	if err := fw.end(); err != nil {
		t.Fatal(err)
	}
	fr := newFrameReader(&buf)
	for i := range evs {
		b, err := fr.next()
		if err != nil || b == nil {
			t.Fatalf("frame %d: %v, %v", i, b, err)
		}
		if b.GetSequence() != uint64(i+1) || len(b.GetLosses()) != 1 || b.GetLosses()[0].GetValue() != uint64(i) ||
			!bytes.Equal(b.GetPacked(), want[i]) {
			t.Fatalf("frame %d: sequence %d losses %v, %d packed bytes", i, b.GetSequence(), b.GetLosses(), len(b.GetPacked()))
		}
	}
	if b, err := fr.next(); err != nil || b == nil || b.GetSequence() != 9 || len(b.GetPacked()) != 0 {
		t.Fatalf("counters-only frame: %v, %v", b, err)
	}
	if b, err := fr.next(); b != nil || err != nil {
		t.Fatalf("end frame: %v, %v; want nil, nil", b, err)
	}
}

// TestFramesBroken: a channel cut short or a frame past the bounds is an
// error that says so, never a batch.
func TestFramesBroken(t *testing.T) {
	var good bytes.Buffer
	b := &pb.EventBatch{Sequence: 1}
	ev := packedEvents()[0]
	b.Packed = appendPacked(nil, &ev, ev.Payload, nil)
	if err := (&frameWriter{w: &good}).write(b); err != nil {
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
		{"records over the bound", head(2, maxFramePacked+1), "over the bounds"},
		{"batch over the bound", head(maxFrameMeta+1, 0), "over the bounds"},
		{"not a batch", append(head(3, 0), 0xff, 0xff, 0xff), "malformed frame"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := newFrameReader(bytes.NewReader(tc.raw)).next()
			if b != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("next = %v, %v; want an error with %q", b, err, tc.want)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errFrame) {
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
	fr := newFrameReader(host)
	if fr.limit <= frameReadAhead {
		t.Fatalf("limit %d, want the socket's buffer plus %d", fr.limit, frameReadAhead)
	}
	if os.Geteuid() == 0 && fr.limit != 2*dataSocketBuffer+frameReadAhead {
		// As root SO_SNDBUFFORCE applies; the kernel doubles it.
		t.Errorf("limit %d as root, want %d", fr.limit, 2*dataSocketBuffer+frameReadAhead)
	}
	chunk := make([]byte, 1<<20)
	if _, err := plugin.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if n := fr.backlog(); n != len(chunk) {
		t.Errorf("backlog %d after a write of %d", n, len(chunk))
	}
	if newFrameReader(&bytes.Buffer{}).limit != 0 {
		t.Error("a reader on a bytes.Buffer has a limit")
	}
}
