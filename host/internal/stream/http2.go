package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"golang.org/x/net/http2/hpack"
)

// Frame types and flags of RFC 9113.
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	settingHeaderTableSize = 0x1
)

const (
	maxStreams   = 256      // open streams tracked per connection
	maxTableSize = 64 << 10 // HPACK dynamic table size honoured from SETTINGS
)

var (
	errFrameSize    = errors.New("frame larger than the buffer limit")
	errFrame        = errors.New("malformed frame")
	errContinuation = errors.New("header block interrupted")
)

// h2conn is an HTTP/2 connection.
type h2conn struct {
	client  int // direction index of the client
	dirs    [2]h2dir
	streams map[uint32]*h2stream
}

// h2dir is the framing and HPACK state of one direction.
type h2dir struct {
	skip      int    // preface bytes still to skip
	buf       []byte // a frame not yet whole
	dec       *hpack.Decoder
	block     []hpack.HeaderField // fields of the header block being decoded
	blockSize int
	blockOver bool
	blockSID  uint32 // stream of the header block being decoded
	blockEnd  bool   // the block's HEADERS frame ended the stream
	blockPush bool   // the block is a PUSH_PROMISE's: decoded for HPACK state only
	cont      bool   // CONTINUATION frames must follow
	stored    int    // body bytes this direction's stream sides hold
	broken    bool
	// A DATA frame with bytes not captured (skip): its data and padding
	// still to come, the data straight to stream dataSID's body.
	dataLeft, padLeft int
	dataSID           uint32
	dataEnd           bool // the frame ends the stream
}

// h2stream is one stream; side is indexed by direction.
type h2stream struct {
	id   uint32
	side [2]h2side
}

// h2side is one direction's message on a stream.
type h2side struct {
	fields    []hpack.HeaderField
	trailers  []hpack.HeaderField
	body      []byte
	wire      int64
	truncated bool
	cut       bool // body bytes were not captured (the module cut its records)
	open      bool // header block seen, message not yet emitted
	done      bool // message emitted
}

func newH2conn(d *Decoder, client int) *h2conn {
	h := &h2conn{client: client, streams: make(map[uint32]*h2stream)}
	h.dirs[client].skip = len(h2Preface)
	for i := range h.dirs {
		s := &h.dirs[i]
		s.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
			s.blockSize += len(f.Name) + len(f.Value) + 32
			if s.blockSize > d.maxHead() {
				s.blockOver = true
				return
			}
			s.block = append(s.block, f)
		})
		s.dec.SetMaxStringLength(d.maxHead())
	}
	return h
}

func (d *Decoder) maxFrame() int { return min(1<<24-1, d.opts.MaxBuffer) }

// feed parses the frames of one record of direction di, then steps over
// the bytes the module did not copy after its payload.
func (h *h2conn) feed(d *Decoder, c *conn, di int, ev *sdk.Event, emit func(*sdk.Event)) {
	if h.dirs[di].broken {
		d.passRecord(ev, emit)
		return
	}
	h.feedBytes(d, c, di, ev.Payload, emit)
	if n := missing(ev); n > 0 && !h.dirs[di].broken {
		h.skip(d, c, di, n, emit)
	}
}

// skip steps over n bytes of direction di that were not captured (see
// missing). Inside a DATA frame they count as its stream's body, which is
// then marked truncated, and the rest of the frame goes on to the body as
// it comes. A frame header among them loses the framing: the open streams
// are emitted incomplete and the direction is passed through from then on,
// as after a protocol error (its HPACK state cannot be trusted again).
func (h *h2conn) skip(d *Decoder, c *conn, di int, n int64, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	if s.dataLeft+s.padLeft == 0 {
		// The hole must start inside a DATA frame whose header (and pad
		// length) was captured: the frame being buffered.
		if s.skip > 0 || len(s.buf) < 9 || s.buf[3] != frameData || s.buf[4]&flagPadded != 0 && len(s.buf) < 10 {
			h.lose(d, c, di, emit)
			return
		}
		flen, got, pad, start := frameLen(s.buf), len(s.buf)-9, 0, 9
		if s.buf[4]&flagPadded != 0 {
			pad, start = int(s.buf[9]), 10
			if pad > flen-1 {
				h.lose(d, c, di, emit)
				return
			}
		}
		dataEnd := 9 + flen - pad // offset in the frame where padding starts
		captured := s.buf[start:min(len(s.buf), dataEnd)]
		s.dataSID = binary.BigEndian.Uint32(s.buf[5:9]) & 0x7fffffff
		s.dataEnd = s.buf[4]&flagEndStream != 0
		s.dataLeft = dataEnd - start - len(captured)
		s.padLeft = pad - max(0, 9+got-dataEnd)
		s.buf = s.buf[:0]
		h.data(d, c, di, captured, 0)
	}
	k := min(int64(s.dataLeft), n)
	s.dataLeft -= int(k)
	n -= k
	h.data(d, c, di, nil, k)
	k = min(int64(s.padLeft), n)
	s.padLeft -= int(k)
	n -= k
	if s.dataLeft+s.padLeft == 0 {
		h.endData(d, c, di, emit)
	}
	if n > 0 {
		h.lose(d, c, di, emit) // the next frame's header is in the hole
	}
}

// data adds b, and missing bytes not captured, to the body of the stream
// of the DATA frame being streamed in direction di.
func (h *h2conn) data(d *Decoder, c *conn, di int, b []byte, missing int64) {
	s := &h.dirs[di]
	st := h.streams[s.dataSID]
	if st == nil || st.side[di].done {
		return // its headers were flushed or never seen
	}
	side := &st.side[di]
	side.wire += int64(len(b)) + missing
	side.cut = side.cut || missing > 0
	room := d.opts.MaxBuffer - s.stored
	if len(b) > room {
		b = b[:max(room, 0)]
		side.truncated = true
	}
	side.body = append(side.body, b...)
	s.stored += len(b)
}

// endData ends the DATA frame streamed in direction di.
func (h *h2conn) endData(d *Decoder, c *conn, di int, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	if st := h.streams[s.dataSID]; st != nil && s.dataEnd {
		h.endSide(d, c, di, st, false, "", emit)
	}
	s.dataSID, s.dataEnd = 0, false
}

// lose gives up decoding direction di after bytes not captured hid a
// frame header: its open streams are emitted incomplete.
func (h *h2conn) lose(d *Decoder, c *conn, di int, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	d.stats.Lost++
	for _, st := range h.streams {
		if side := &st.side[di]; !side.done && (side.open || len(side.body) > 0) {
			side.cut = true
			h.endSide(d, c, di, st, true, "", emit)
		}
	}
	d.passBytes(&c.meta[di], s.buf, emit)
	s.buf, s.block, s.broken = nil, nil, true
	s.dataLeft, s.padLeft = 0, 0
}

// feedBytes parses the frames in p, bytes of direction di.
func (h *h2conn) feedBytes(d *Decoder, c *conn, di int, p []byte, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	if s.skip > 0 {
		n := min(s.skip, len(p))
		s.skip -= n
		p = p[n:]
	}
	for len(p) > 0 {
		if s.dataLeft+s.padLeft > 0 { // the rest of a DATA frame with a hole
			k := min(s.dataLeft, len(p))
			h.data(d, c, di, p[:k], 0)
			s.dataLeft -= k
			p = p[k:]
			k = min(s.padLeft, len(p))
			s.padLeft -= k
			p = p[k:]
			if s.dataLeft+s.padLeft == 0 {
				h.endData(d, c, di, emit)
			}
			continue
		}
		if len(s.buf) == 0 && len(p) >= 9 {
			n := 9 + frameLen(p)
			if n-9 > d.maxFrame() {
				h.fail(d, c, di, p, errFrameSize, emit)
				return
			}
			if len(p) >= n {
				if err := h.frame(d, c, di, p[:n], emit); err != nil {
					h.fail(d, c, di, p, err, emit)
					return
				}
				p = p[n:]
				continue
			}
		}
		if len(s.buf) < 9 {
			n := min(9-len(s.buf), len(p))
			s.buf = append(s.buf, p[:n]...)
			p = p[n:]
			if len(s.buf) < 9 {
				return
			}
		}
		n := 9 + frameLen(s.buf)
		if n-9 > d.maxFrame() {
			h.fail(d, c, di, p, errFrameSize, emit)
			return
		}
		k := min(n-len(s.buf), len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) < n {
			return
		}
		if err := h.frame(d, c, di, s.buf, emit); err != nil {
			h.fail(d, c, di, p, err, emit)
			return
		}
		s.buf = s.buf[:0]
		if cap(s.buf) > keepBufBytes {
			s.buf = nil
		}
	}
}

func frameLen(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// fail passes the partial frame and rest through and stops decoding the
// direction: without its HPACK state nothing after can be trusted.
func (h *h2conn) fail(d *Decoder, c *conn, di int, rest []byte, err error, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	d.stats.ProtocolErrors++
	d.pay = append(append(d.pay[:0], s.buf...), rest...)
	d.passError(&c.meta[di], d.pay, fmt.Errorf("http/2: %w", err), emit)
	s.buf, s.block, s.broken = nil, nil, true
}

// frame handles one whole frame f of direction di.
func (h *h2conn) frame(d *Decoder, c *conn, di int, f []byte, emit func(*sdk.Event)) error {
	s := &h.dirs[di]
	typ, flags := f[3], f[4]
	sid := binary.BigEndian.Uint32(f[5:9]) & 0x7fffffff
	payload := f[9:]
	if s.cont && (typ != frameContinuation || sid != s.blockSID) {
		return errContinuation
	}
	switch typ {
	case frameData:
		if sid == 0 {
			return errFrame
		}
		data, err := unpad(flags, payload)
		if err != nil {
			return err
		}
		s.dataSID, s.dataEnd = sid, flags&flagEndStream != 0
		h.data(d, c, di, data, 0)
		h.endData(d, c, di, emit)
	case frameHeaders:
		if sid == 0 {
			return errFrame
		}
		frag, err := unpad(flags, payload)
		if err != nil {
			return err
		}
		if flags&flagPriority != 0 {
			if len(frag) < 5 {
				return errFrame
			}
			frag = frag[5:]
		}
		s.startBlock(sid, flags&flagEndStream != 0, false)
		return h.fragment(d, c, di, frag, flags&flagEndHeaders != 0, emit)
	case framePushPromise:
		frag, err := unpad(flags, payload)
		if err != nil {
			return err
		}
		if len(frag) < 4 {
			return errFrame
		}
		s.startBlock(sid, false, true)
		return h.fragment(d, c, di, frag[4:], flags&flagEndHeaders != 0, emit)
	case frameContinuation:
		if !s.cont {
			return errContinuation
		}
		return h.fragment(d, c, di, payload, flags&flagEndHeaders != 0, emit)
	case frameSettings:
		if flags&flagAck != 0 {
			return nil
		}
		if len(payload)%6 != 0 {
			return errFrame
		}
		for i := 0; i < len(payload); i += 6 {
			if binary.BigEndian.Uint16(payload[i:]) == settingHeaderTableSize {
				v := binary.BigEndian.Uint32(payload[i+2:])
				// The sender decodes with at most v: the peer encodes for it.
				h.dirs[1-di].dec.SetAllowedMaxDynamicTableSize(min(v, maxTableSize))
			}
		}
	case frameRSTStream:
		if len(payload) != 4 {
			return errFrame
		}
		if st := h.streams[sid]; st != nil {
			code := errCodeName(binary.BigEndian.Uint32(payload))
			for i := range st.side {
				h.endSide(d, c, i, st, true, code, emit)
			}
		}
	case framePriority, framePing, frameGoAway, frameWindowUpdate:
		// Flow control and liveness: nothing to show.
	}
	return nil
}

// unpad strips the padding of a DATA, HEADERS or PUSH_PROMISE payload.
func unpad(flags byte, p []byte) ([]byte, error) {
	if flags&flagPadded == 0 {
		return p, nil
	}
	if len(p) < 1 || int(p[0]) > len(p)-1 {
		return nil, errFrame
	}
	return p[1 : len(p)-int(p[0])], nil
}

func (s *h2dir) startBlock(sid uint32, endStream, push bool) {
	s.block, s.blockSize, s.blockOver = s.block[:0], 0, false
	s.blockSID, s.blockEnd, s.blockPush, s.cont = sid, endStream, push, true
}

// fragment decodes one fragment of a header block; the last one completes
// the block.
func (h *h2conn) fragment(d *Decoder, c *conn, di int, frag []byte, last bool, emit func(*sdk.Event)) error {
	s := &h.dirs[di]
	if _, err := s.dec.Write(frag); err != nil {
		return err
	}
	if !last {
		return nil
	}
	s.cont = false
	if err := s.dec.Close(); err != nil {
		return err
	}
	if s.blockPush {
		return nil
	}
	st := h.stream(d, c, s.blockSID, emit)
	side := &st.side[di]
	if side.done {
		return nil
	}
	fields := append([]hpack.HeaderField(nil), s.block...)
	if !side.open {
		side.fields, side.open = fields, true
		side.truncated = side.truncated || s.blockOver
		if di != h.client && !s.blockEnd && informational(fields) {
			// A 1xx response: an event of its own; the final one follows.
			d.emitH2(c, di, h, st, side, false, "", emit)
			s.stored -= len(side.body)
			*side = h2side{}
		}
	} else {
		side.trailers = fields
		side.truncated = side.truncated || s.blockOver
	}
	if s.blockEnd {
		h.endSide(d, c, di, st, false, "", emit)
	}
	return nil
}

func informational(fields []hpack.HeaderField) bool {
	for _, f := range fields {
		if f.Name == ":status" {
			return len(f.Value) == 3 && f.Value[0] == '1'
		}
	}
	return false
}

// stream returns stream sid, created if new. At maxStreams the lowest
// stream, the oldest, is emitted incomplete to make room.
func (h *h2conn) stream(d *Decoder, c *conn, sid uint32, emit func(*sdk.Event)) *h2stream {
	if st := h.streams[sid]; st != nil {
		return st
	}
	if len(h.streams) >= maxStreams {
		var old *h2stream
		for _, st := range h.streams {
			if old == nil || st.id < old.id {
				old = st
			}
		}
		for i := range old.side {
			h.endSide(d, c, i, old, true, "", emit)
		}
		delete(h.streams, old.id)
	}
	st := &h2stream{id: sid}
	h.streams[sid] = st
	return st
}

// endSide emits the message of st in direction di, unless it was emitted
// or never started, and forgets the stream once both sides are done.
func (h *h2conn) endSide(d *Decoder, c *conn, di int, st *h2stream, incomplete bool, reset string, emit func(*sdk.Event)) {
	side := &st.side[di]
	if !side.done && (side.open || len(side.body) > 0) {
		d.emitH2(c, di, h, st, side, incomplete, reset, emit)
	}
	h.dirs[di].stored -= len(side.body)
	*side = h2side{done: true}
	if st.side[0].done && st.side[1].done {
		delete(h.streams, st.id)
	}
}

// flushStreams emits every stream's pending messages, marked incomplete,
// and forgets the streams.
func (h *h2conn) flushStreams(d *Decoder, c *conn, emit func(*sdk.Event)) {
	for _, st := range h.streams {
		for i := range st.side {
			h.endSide(d, c, i, st, true, "", emit)
		}
	}
	clear(h.streams)
}

// flushRaw passes through partial frames; the connection is being dropped.
func (h *h2conn) flushRaw(d *Decoder, c *conn, emit func(*sdk.Event)) {
	for di := range h.dirs {
		d.passBytes(&c.meta[di], h.dirs[di].buf, emit)
		h.dirs[di].buf = nil
	}
}

// emitH2 emits one side of a stream.
func (d *Decoder) emitH2(c *conn, di int, h *h2conn, st *h2stream, side *h2side, incomplete bool, reset string, emit func(*sdk.Event)) {
	request := di == h.client
	kind := KindResponse
	if request {
		kind = KindRequest
	}
	o := d.begin(&c.meta[di], kind)
	var encoding, method, path, authority, status string
	for _, f := range side.fields {
		switch f.Name {
		case ":method":
			method = f.Value
		case ":path":
			path = f.Value
		case ":authority":
			authority = f.Value
		case ":status":
			status = f.Value
		case "content-encoding":
			encoding = joinList(encoding, f.Value)
		}
	}
	if side.cut {
		encoding = "" // a body with holes is shown as captured
	}
	body, applied, dtrunc, derr := d.body.decode(side.body, encoding, d.opts.MaxBuffer)
	pay := d.pay[:0]
	for _, f := range side.fields {
		pay = append(pay, f.Name...)
		pay = append(pay, ": "...)
		pay = append(pay, f.Value...)
		pay = append(pay, '\n')
	}
	pay = append(pay, '\n')
	pay = append(pay, body...)
	d.pay = pay
	o.Payload = pay

	o.AddField("proto", "HTTP/2")
	if request {
		o.AddField("method", method)
		o.AddField("path", path)
		if authority != "" {
			o.AddField("authority", authority)
		}
	} else if status != "" {
		o.AddField("status", status)
	}
	o.AddField("stream_id", strconv.FormatUint(uint64(st.id), 10))
	d.addBodyFields(o, len(body), side.wire, applied, derr, side.truncated || dtrunc || side.cut, incomplete)
	if (side.truncated || side.cut) && applied == "" {
		// The body is shown as captured: its real length is known.
		o.AddField(fieldPayloadBytes, d.itoa(4, int64(len(pay)-len(body))+side.wire))
	}
	if reset != "" {
		o.AddField("reset", reset)
	}
	for _, f := range side.fields {
		if !strings.HasPrefix(f.Name, ":") {
			o.AddField(d.fieldKey("header.", f.Name), f.Value)
		}
	}
	for _, f := range side.trailers {
		o.AddField(d.fieldKey("trailer.", f.Name), f.Value)
	}
	d.stats.HTTP2Messages++
	d.send(o, emit)
}

// errCodeName names an HTTP/2 error code.
func errCodeName(code uint32) string {
	names := [...]string{
		"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
		"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
		"CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
		"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
	}
	if int64(code) < int64(len(names)) {
		return names[code]
	}
	return "0x" + strconv.FormatUint(uint64(code), 16)
}
