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
	// Annotate, when set, gives the comment of a packet queued without
	// one, when the packet is written: after Delay, what sent it (e.g. the
	// process of a connection first seen in a TLS record) may be known.
	Annotate func(data []byte) string
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
}

// Writer writes one pcapng section with one interface. It is safe for
// concurrent use.
type Writer struct {
	mu      sync.Mutex
	out     *bufio.Writer
	ng      *pcapgo.NgWriter
	opts    Options
	queue   []held
	heldLen int
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
	return &Writer{out: out, ng: ng, opts: opts}, nil
}

// WritePacket queues a packet captured at t; comment (e.g. "pid=12 comm=curl")
// may be empty. data is copied. Held packets are written in the order of
// their capture times, so packets a capture delivers out of order (e.g.
// from per-CPU buffers) are put back in order while they are held.
func (w *Writer) WritePacket(t time.Time, data []byte, origLen int, comment string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	n := min(len(data), int(w.opts.SnapLen))
	now := w.opts.Now()
	p := held{
		at:      now,
		ci:      gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: max(origLen, n)},
		data:    append([]byte(nil), data[:n]...),
		comment: comment,
	}
	// Usually the packet is the latest: search from the end.
	i := len(w.queue)
	for i > 0 && w.queue[i-1].ci.Timestamp.After(t) {
		i--
	}
	w.queue = append(w.queue, held{})
	copy(w.queue[i+1:], w.queue[i:])
	w.queue[i] = p
	w.heldLen += n
	for w.heldLen > w.opts.MaxHeld && len(w.queue) > 0 {
		w.stats.EarlyPackets++
		w.writeOldestLocked()
	}
	w.releaseLocked(now, false)
	return w.err
}

// WriteSecrets writes a Decryption Secrets Block holding keyLog (NSS key
// log lines) before every packet still held.
func (w *Writer) WriteSecrets(keyLog []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.ng.Flush(); err != nil {
		w.err = err
		return err
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
	w.releaseLocked(w.opts.Now(), false)
	w.flushLocked()
	return w.err
}

// flushLocked pushes what is buffered to the underlying writer, so a
// reader of the file sees every block written so far.
func (w *Writer) flushLocked() {
	if w.err == nil {
		w.err = w.ng.Flush()
	}
	if w.err == nil {
		w.err = w.out.Flush()
	}
}

// releaseLocked writes held packets that waited Delay, or all of them.
func (w *Writer) releaseLocked(now time.Time, all bool) {
	for len(w.queue) > 0 && w.err == nil && (all || now.Sub(w.queue[0].at) >= w.opts.Delay) {
		w.writeOldestLocked()
	}
}

func (w *Writer) writeOldestLocked() {
	p := w.queue[0]
	w.queue[0] = held{}
	w.queue = w.queue[1:]
	w.heldLen -= len(p.data)
	opts := pcapgo.NgPacketOptions{}
	if p.comment == "" && w.opts.Annotate != nil {
		p.comment = w.opts.Annotate(p.data)
	}
	if p.comment != "" {
		opts.Comments = []string{p.comment}
	}
	if err := w.ng.WritePacketWithOptions(p.ci, p.data, opts); err != nil {
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
	w.releaseLocked(w.opts.Now(), true)
	w.flushLocked()
	return w.err
}
