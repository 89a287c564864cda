package pcapng

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// frame is an Ethernet frame of n bytes.
func frame(n int, tag byte) []byte {
	b := make([]byte, n)
	b[12], b[13] = 0x08, 0x00 // IPv4 ethertype
	b[n-1] = tag
	return b
}

// blocks lists the block types of a pcapng file in order.
func blocks(t *testing.T, b []byte) []uint32 {
	t.Helper()
	var out []uint32
	for len(b) >= 12 {
		typ, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		if n < 12 || int(n) > len(b) || n%4 != 0 {
			t.Fatalf("bad block length %d", n)
		}
		out = append(out, typ)
		b = b[n:]
	}
	return out
}

func TestSecretsPrecedeHeldPackets(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	late := false
	annotate := func(data []byte) Annotation {
		if late && data[len(data)-1] == 2 {
			return Annotation{Comment: "pid=7 comm=late"}
		}
		return Annotation{}
	}
	w, err := NewWriter(&buf, Options{Interface: "lo", Delay: time.Second, Now: func() time.Time { return now }, Annotate: annotate})
	if err != nil {
		t.Fatal(err)
	}
	// Two packets of a handshake, then its keys 100 ms later: the keys
	// must come first in the file.
	if err := w.WritePacket(now, frame(60, 1), 60, "pid=42 comm=curl"); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(now, frame(70, 2), 70, ""); err != nil {
		t.Fatal(err)
	}
	now = now.Add(100 * time.Millisecond)
	keys := []byte("CLIENT_RANDOM 00 11\n")
	if err := w.WriteSecrets(keys); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	late = true
	if err := w.WritePacket(now, frame(80, 3), 80, ""); err != nil { // releases the first two
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := blocks(t, buf.Bytes())
	want := []uint32{0x0A0D0D0A, 1, blockDSB, 6, 6, 6}
	if len(got) != len(want) {
		t.Fatalf("blocks %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("blocks %x, want %x", got, want)
		}
	}
	if !bytes.Contains(buf.Bytes(), keys) {
		t.Errorf("key log lines not in the file")
	}
	// The packets read back, with their comment, through an independent reader.
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, wantTag := range []byte{1, 2, 3} {
		data, _, err := r.ReadPacketData()
		if err != nil || data[len(data)-1] != wantTag {
			t.Fatalf("packet %d: %v, tag %v", i, err, data)
		}
	}
	if s := w.Stats(); s.Packets != 3 || s.SecretBlocks != 1 || s.EarlyPackets != 0 {
		t.Errorf("stats %+v", s)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		path := filepath.Join(t.TempDir(), "x.pcapng")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.comment").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "pid=42 comm=curl") || !strings.Contains(string(out), "pid=7 comm=late") {
			t.Errorf("tshark reading the file: %v\n%s", err, out)
		}
	}
}

func TestMaxHeldForcesPacketsOut(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{MaxHeld: 150, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := w.WritePacket(now, frame(60, byte(i)), 60, ""); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.Stats(); s.EarlyPackets != 2 || s.Packets != 2 {
		t.Errorf("stats %+v, want 2 packets forced out early", s)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Packets != 4 {
		t.Errorf("after close: %+v", s)
	}
}

// TestHeldPacketsInCaptureOrder: packets handed over out of order (per-CPU
// buffers) are written in the order of their capture times.
func TestHeldPacketsInCaptureOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []byte{3, 1, 4, 2, 5} {
		if err := w.WritePacket(now.Add(time.Duration(tag)*time.Millisecond), frame(60, tag), 60, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		data, ci, err := r.ReadPacketData()
		if err != nil || data[len(data)-1] != byte(i+1) {
			t.Fatalf("packet %d: %v, tag %v at %v", i, err, data[len(data)-1], ci.Timestamp)
		}
	}
}

// TestReadyPacketsSkipTheQueue: packets whose secrets are written go out
// at once; the others wait for Release (in their order) or Delay; the
// caller's buffer is free after WritePacket.
func TestReadyPacketsSkipTheQueue(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	ready := map[byte]bool{1: true}
	annotate := func(data []byte) Annotation {
		tag := data[len(data)-1]
		return Annotation{Comment: fmt.Sprintf("pid=%d comm=x", tag), Ready: ready[tag%10]}
	}
	w, err := NewWriter(&buf, Options{Delay: time.Second, Now: func() time.Time { return now }, Annotate: annotate})
	if err != nil {
		t.Fatal(err)
	}
	in := frame(60, 0)
	write := func(tag byte) {
		t.Helper()
		in[len(in)-1] = tag // the same buffer every time: WritePacket must copy what it keeps
		if err := w.WritePacket(now, in, 60, ""); err != nil {
			t.Fatal(err)
		}
	}
	write(3)  // connection 3: waits
	write(2)  // connection 2: waits
	write(1)  // connection 1: ready, written at once
	write(12) // connection 2 again: waits behind 2
	if s := w.Stats(); s.Packets != 1 {
		t.Fatalf("after four packets, one ready: %+v", s)
	}
	if err := w.WriteSecrets([]byte("CLIENT_RANDOM 22 22\n")); err != nil {
		t.Fatal(err)
	}
	ready[2] = true
	if err := w.Release(func(data []byte) bool { return data[len(data)-1]%10 == 2 }); err != nil {
		t.Fatal(err)
	}
	write(22) // connection 2, now ready
	now = now.Add(2 * time.Second)
	if err := w.Tick(); err != nil { // connection 3 waited its second
		t.Fatal(err)
	}
	if s := w.Stats(); s.Packets != 5 || s.EarlyPackets != 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := blocks(t, buf.Bytes()), []uint32{0x0A0D0D0A, 1, 6, blockDSB, 6, 6, 6, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("blocks %x, want %x", got, want)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, wantTag := range []byte{1, 2, 12, 22, 3} {
		data, _, err := r.ReadPacketData()
		if err != nil || data[len(data)-1] != wantTag {
			t.Fatalf("packet %d: %v, tag %v, want %d", i, err, data[len(data)-1], wantTag)
		}
	}
}

// BenchmarkWriteReady is the cost of a 16 KiB packet whose keys are known
// (the usual one at full load): no copy besides the file's buffer.
func BenchmarkWriteReady(b *testing.B) {
	w, err := NewWriter(io.Discard, Options{Annotate: func([]byte) Annotation {
		return Annotation{Comment: "pid=1 comm=nginx container_id=abc", Flow: 7, Ready: true}
	}})
	if err != nil {
		b.Fatal(err)
	}
	data := frame(16472, 1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WritePacket(time.Unix(1, 0), data, len(data), ""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFlowsKeepTheirOrder: a packet of a flow is never written before an
// earlier one of its flow still waiting, whether it becomes ready by
// itself (the earlier ones go first) or Release selects it (it stays
// behind an earlier one Release leaves).
func TestFlowsKeepTheirOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	var buf bytes.Buffer
	ready := map[byte]bool{}
	// The tag's tens are the flow; a flow is ready as a whole, except
	// where only tags are (the ones digit 9).
	annotate := func(data []byte) Annotation {
		tag := data[len(data)-1]
		return Annotation{Comment: fmt.Sprintf("tag=%d", tag), Flow: uint64(tag/10 + 1), Ready: ready[tag/10*10] || ready[tag]}
	}
	w, err := NewWriter(&buf, Options{Delay: time.Second, Now: func() time.Time { return now }, Annotate: annotate})
	if err != nil {
		t.Fatal(err)
	}
	write := func(tag byte) {
		t.Helper()
		now = now.Add(time.Millisecond)
		if err := w.WritePacket(now, frame(60, tag), 60, ""); err != nil {
			t.Fatal(err)
		}
	}
	write(11) // flow 1 waits
	write(21) // flow 2 waits
	write(12)
	ready[10] = true
	write(13) // ready: 11 and 12 first, not 21
	if s := w.Stats(); s.Packets != 3 {
		t.Fatalf("after flow 1 became ready: %+v", s)
	}
	write(22)
	write(29)
	ready[29] = true // Release selects 29, but 22 stays: so does 29
	if err := w.Release(func(data []byte) bool { return annotate(data).Ready }); err != nil {
		t.Fatal(err)
	}
	write(31) // another flow, waiting
	ready[20] = true
	if err := w.Release(func(data []byte) bool { return annotate(data).Ready }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		got = append(got, data[len(data)-1])
	}
	// 31 waits until Close.
	if want := []byte{11, 12, 13, 21, 22, 29, 31}; !bytes.Equal(got, want) {
		t.Errorf("packets %v, want %v", got, want)
	}
	if len(w.flows) != 0 {
		t.Errorf("flows still counted: %v", w.flows)
	}
}
