package pcapng

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Defaults of Options.
const (
	DefaultDelay   = time.Second
	DefaultMaxHeld = 32 << 20
	DefaultSnapLen = 65535
)

// blockDSB is the pcapng Decryption Secrets Block type; secretsTLS the
// secrets type of a TLS key log ("TLSK").
const (
	blockEPB   = 0x00000006
	blockDSB   = 0x0000000A
	secretsTLS = 0x544c534b
)

// Options configure a Writer.
type Options struct {
	Interface string          // interface name, in the Interface Description Block
	LinkType  layers.LinkType // default Ethernet
	SnapLen   uint32          // default DefaultSnapLen
	Delay     time.Duration   // how long packets wait for their keys; default DefaultDelay
	MaxHeld   int             // bytes of packets held at most; default DefaultMaxHeld
	Now       func() time.Time
	// Annotate, when set, tells of a packet queued without a comment
	// what Annotation says. A ready packet is written at once unless
	// packets of its flow wait; the others wait Delay, or until Release,
	// and are annotated again when written (what sent them may be known
	// by then). Without Annotate every packet waits Delay.
	Annotate func(data []byte) Annotation
}

// Annotation is what Options.Annotate tells of a packet.
type Annotation struct {
	// Comment is the packet's comment, e.g. the process that sent it.
	Comment string
	// Flow names the packets whose order the file keeps (e.g. a TCP
	// connection, both ways: a TLS handshake is read in its order): a
	// packet is not written before an earlier one of its flow. 0: none.
	Flow uint64
	// Ready says that the packet can be written: the secrets it needs,
	// if any, are written and its comment is final.
	Ready bool
}

// Stats counts what a Writer wrote.
type Stats struct {
	Packets      uint64
	SecretBlocks uint64
	// EarlyPackets were written before Delay ran out because MaxHeld was
	// reached: a key arriving after them is written after them.
	EarlyPackets uint64
}

type held struct {
	at      time.Time
	ci      gopacket.CaptureInfo
	data    []byte
	comment string
	flow    uint64
}

// Writer writes one pcapng section with one interface. It is safe for
// concurrent use.
type Writer struct {
	mu      sync.Mutex
	out     *bufio.Writer
	opts    Options
	queue   []held
	heldLen int
	flows   map[uint64]int      // packets held per flow
	blocked map[uint64]struct{} // Release's flows kept, reused
	free    [][]byte            // buffers of packets written, for packets to wait
	epb     [32]byte            // an Enhanced Packet Block's header and a comment's option header
	stats   Stats
	err     error
}

// NewWriter writes the section header and interface description to w.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	if opts.LinkType == 0 {
		opts.LinkType = layers.LinkTypeEthernet
	}
	if opts.SnapLen == 0 {
		opts.SnapLen = DefaultSnapLen
	}
	if opts.Delay == 0 {
		opts.Delay = DefaultDelay
	}
	if opts.MaxHeld == 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	out := bufio.NewWriterSize(w, 256<<10)
	ng, err := pcapgo.NewNgWriterInterface(out, pcapgo.NgInterface{
		Name:                opts.Interface,
		LinkType:            opts.LinkType,
		SnapLength:          opts.SnapLen,
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "ecaphost"}})
	if err != nil {
		return nil, fmt.Errorf("writing the pcapng header: %w", err)
	}
	// pcapgo writes the section and interface; the blocks after them are
	// written to out directly.
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("writing the pcapng header: %w", err)
	}
	return &Writer{out: out, opts: opts}, nil
}

// WritePacket writes a packet captured at t, or queues it until its
// secrets are written (see Options.Annotate); comment (e.g. "pid=12
// comm=curl") may be empty. data is only used during the call. Queued
// packets are written in the order of their capture times, so packets a
// capture delivers out of order are put back in order while they wait; a
// ready packet may so be written before older packets still waiting.
func (w *Writer) WritePacket(t time.Time, data []byte, origLen int, comment string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	n := min(len(data), int(w.opts.SnapLen))
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: max(origLen, n)}
	var flow uint64
	if w.opts.Annotate != nil {
		a := w.opts.Annotate(data[:n])
		if a.Ready && a.Flow != 0 && w.flows[a.Flow] > 0 {
			// Earlier packets of the flow wait: those ready now go first.
			w.releaseLocked(func(p *held) bool { return p.flow == a.Flow && w.opts.Annotate(p.data).Ready })
			a.Ready = w.flows[a.Flow] == 0
		}
		if a.Ready {
			if comment == "" {
				comment = a.Comment
			}
			w.writeLocked(ci, data[:n], comment)
			return w.err
		}
		flow = a.Flow
	}
	now := w.opts.Now()
	p := held{at: now, ci: ci, data: append(w.buffer(n), data[:n]...), comment: comment, flow: flow}
	// Usually the packet is the latest: search from the end.
	i := len(w.queue)
	for i > 0 && w.queue[i-1].ci.Timestamp.After(t) {
		i--
	}
	w.queue = append(w.queue, held{})
	copy(w.queue[i+1:], w.queue[i:])
	w.queue[i] = p
	w.heldLen += n
	if flow != 0 {
		if w.flows == nil {
			w.flows = make(map[uint64]int)
		}
		w.flows[flow]++
	}
	for w.heldLen > w.opts.MaxHeld && len(w.queue) > 0 {
		w.stats.EarlyPackets++
		w.writeOldestLocked()
	}
	w.expireLocked(now, false)
	return w.err
}

// buffer returns an empty slice with room for n bytes, reusing the buffer
// of a packet written earlier when it is large enough.
func (w *Writer) buffer(n int) []byte {
	for i := len(w.free) - 1; i >= 0; i-- {
		if b := w.free[i]; cap(b) >= n {
			w.free[i] = w.free[len(w.free)-1]
			w.free = w.free[:len(w.free)-1]
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// Release writes at once, in their order, the waiting packets match
// selects, but none after an earlier packet of its flow that stays: call
// it after writing the secrets they were waiting for.
func (w *Writer) Release(match func(data []byte) bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.releaseLocked(func(p *held) bool { return match(p.data) })
	return w.err
}

// releaseLocked writes the held packets match selects, in their order,
// except those after a packet of their flow that stays.
func (w *Writer) releaseLocked(match func(p *held) bool) {
	if len(w.queue) == 0 || w.err != nil {
		return
	}
	clear(w.blocked)
	kept := w.queue[:0]
	for i := range w.queue {
		p := &w.queue[i]
		_, blocked := w.blocked[p.flow]
		if w.err == nil && !blocked && match(p) {
			w.writeHeldLocked(*p)
			continue
		}
		if p.flow != 0 && !blocked {
			if w.blocked == nil {
				w.blocked = make(map[uint64]struct{})
			}
			w.blocked[p.flow] = struct{}{}
		}
		kept = append(kept, *p)
	}
	clear(w.queue[len(kept):])
	w.queue = kept
}

// WriteSecrets writes a Decryption Secrets Block holding keyLog (NSS key
// log lines) before every packet still held.
func (w *Writer) WriteSecrets(keyLog []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.err = writeDSB(w.out, keyLog)
	if w.err == nil {
		w.stats.SecretBlocks++
	}
	return w.err
}

// writeDSB writes one Decryption Secrets Block:
// type, total length, secrets type, secrets length, secrets padded to 4
// bytes, total length.
func writeDSB(out io.Writer, secrets []byte) error {
	pad := (4 - len(secrets)%4) % 4
	total := uint32(4 + 4 + 4 + 4 + len(secrets) + pad + 4)
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:], blockDSB)
	binary.LittleEndian.PutUint32(hdr[4:], total)
	binary.LittleEndian.PutUint32(hdr[8:], secretsTLS)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(secrets)))
	var tail [8]byte
	binary.LittleEndian.PutUint32(tail[pad:], total)
	for _, b := range [][]byte{hdr[:], secrets, tail[:pad+4]} {
		if _, err := out.Write(b); err != nil {
			return fmt.Errorf("writing a decryption secrets block: %w", err)
		}
	}
	return nil
}

// Tick writes the packets that have waited Delay. Call it periodically.
func (w *Writer) Tick() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expireLocked(w.opts.Now(), false)
	w.flushLocked()
	return w.err
}

// flushLocked pushes what is buffered to the underlying writer, so a
// reader of the file sees every block written so far.
func (w *Writer) flushLocked() {
	if w.err == nil {
		w.err = w.out.Flush()
	}
}

// expireLocked writes held packets that waited Delay, or all of them.
func (w *Writer) expireLocked(now time.Time, all bool) {
	for len(w.queue) > 0 && w.err == nil && (all || now.Sub(w.queue[0].at) >= w.opts.Delay) {
		w.writeOldestLocked()
	}
}

func (w *Writer) writeOldestLocked() {
	p := w.queue[0]
	w.queue[0] = held{}
	w.queue = w.queue[1:]
	w.writeHeldLocked(p)
}

// writeHeldLocked writes p, a packet that waited, and keeps its buffer
// for a later one.
func (w *Writer) writeHeldLocked(p held) {
	w.heldLen -= len(p.data)
	if p.flow != 0 {
		if w.flows[p.flow]--; w.flows[p.flow] == 0 {
			delete(w.flows, p.flow)
		}
	}
	if p.comment == "" && w.opts.Annotate != nil {
		p.comment = w.opts.Annotate(p.data).Comment
	}
	w.writeLocked(p.ci, p.data, p.comment)
	if len(w.free) < maxFree {
		w.free = append(w.free, p.data)
	}
}

// zeros pads blocks and options to 4 bytes; never written to.
var zeros [4]byte

// maxFree bounds the buffers kept for packets to come.
const maxFree = 64

// writeLocked writes one Enhanced Packet Block: type, total length,
// interface 0, timestamp (ns, as the interface's resolution says) high and
// low, captured and original length, the data padded to 4 bytes, an
// opt_comment option when comment is set and opt_endofopt, total length.
// It is written here rather than by pcapgo, which allocates its options
// for every packet.
func (w *Writer) writeLocked(ci gopacket.CaptureInfo, data []byte, comment string) {
	if w.err != nil {
		return
	}
	pad := (4 - len(data)%4) % 4
	opts := 0
	if comment != "" {
		comment = comment[:min(len(comment), 0xffff)]
		opts = 4 + len(comment) + (4-len(comment)%4)%4 + 4
	}
	total := uint32(28 + len(data) + pad + opts + 4)
	le := binary.LittleEndian
	h := w.epb[:28]
	le.PutUint32(h[0:], blockEPB)
	le.PutUint32(h[4:], total)
	le.PutUint32(h[8:], 0)
	ts := uint64(ci.Timestamp.UnixNano())
	le.PutUint32(h[12:], uint32(ts>>32))
	le.PutUint32(h[16:], uint32(ts))
	le.PutUint32(h[20:], uint32(len(data)))
	le.PutUint32(h[24:], uint32(ci.Length))
	_, _ = w.out.Write(h)
	_, _ = w.out.Write(data)
	_, _ = w.out.Write(zeros[:pad])
	if comment != "" {
		o := w.epb[28:32]
		le.PutUint16(o[0:], 1) // opt_comment
		le.PutUint16(o[2:], uint16(len(comment)))
		_, _ = w.out.Write(o)
		_, _ = w.out.WriteString(comment)
		_, _ = w.out.Write(zeros[:(4-len(comment)%4)%4])
		_, _ = w.out.Write(zeros[:]) // opt_endofopt
	}
	le.PutUint32(h[0:], total)
	if _, err := w.out.Write(h[:4]); err != nil {
		// bufio keeps its first error: every write above failed with it.
		w.err = fmt.Errorf("writing a packet: %w", err)
		return
	}
	w.stats.Packets++
}

// Stats returns the counts so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close writes every held packet and flushes. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expireLocked(w.opts.Now(), true)
	w.flushLocked()
	return w.err
}
