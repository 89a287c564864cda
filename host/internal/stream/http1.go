package stream

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
)

// h1state is where an HTTP/1 direction is in its current message.
type h1state uint8

const (
	stHead      h1state = iota // reading the header block
	stBody                     // remaining bytes of a Content-Length body
	stChunkLine                // reading a chunk-size line into line
	stChunkData                // remaining bytes of chunk data
	stChunkEnd                 // reading the line break after chunk data
	stTrailer                  // reading the trailer section into line
	stClose                    // body until the connection ends
	stOpaque                   // passing records through
)

const maxPendingMethods = 256

// h1conn is an HTTP/1 connection: one parser per direction, and the
// methods of requests still waiting for their final response, in order.
type h1conn struct {
	dirs    [2]h1dir
	methods []string
}

// h1dir parses the messages one direction carries. Bytes are looked at
// once: the header block is scanned incrementally for its end, and body
// bytes go straight from the record to msg.
type h1dir struct {
	request   bool // carries requests (else responses)
	state     h1state
	broken    bool  // opaque after a protocol error: resynchronise on a record that starts a message
	hstate    uint8 // header-end scanner: 0 in a line, 1 after LF, 2 after LF CR
	msg       []byte
	headLen   int
	line      []byte
	remaining int64
	wire      int64
	truncated bool
	cut       bool // body bytes were not captured (the module cut its records)
	head      h1head
	trailers  []hdr
}

type hdr struct{ name, value string }

// h1head is a parsed start line and header block. Its strings share one
// allocation, the text of the block.
type h1head struct {
	proto, method, target, host string
	status                      int
	headers                     []hdr
	contentLength               int64 // -1: absent
	chunked, otherTE            bool
	encoding                    string
}

var (
	errStartLine     = errors.New("malformed start line")
	errHeaderLine    = errors.New("malformed header line")
	errContentLength = errors.New("invalid Content-Length")
	errChunk         = errors.New("malformed chunk framing")
	errTooLong       = errors.New("header block too long")
	errTE            = errors.New("request with a transfer coding other than chunked")
)

func newH1conn(reqDir int) *h1conn {
	h := &h1conn{}
	h.dirs[reqDir].request = true
	return h
}

func (d *Decoder) maxHead() int { return min(maxHeadBytes, d.opts.MaxBuffer) }

// feed parses one record of direction di, then steps over the bytes the
// module did not copy after its payload.
func (h *h1conn) feed(d *Decoder, c *conn, di int, ev *sdk.Event, emit func(*sdk.Event)) {
	h.feedBytes(d, c, di, ev, emit)
	if n := missing(ev); n > 0 {
		h.skip(d, c, di, n, emit)
	}
}

// skip steps over n bytes of direction di that were not captured (the
// module cut its record, see missing). Inside a body framed by its length
// they are counted as the body's, which is then marked truncated;
// anywhere else the framing is lost: the message under way is emitted
// incomplete and the direction waits for a record that starts a message.
func (h *h1conn) skip(d *Decoder, c *conn, di int, n int64, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	for n > 0 {
		switch s.state {
		case stOpaque:
			return
		case stBody, stChunkData:
			k := min(s.remaining, n)
			s.wire += k
			s.remaining -= k
			s.cut = true
			n -= k
			if s.remaining == 0 {
				if s.state == stBody {
					s.state = stHead
					h.complete(d, c, di, emit)
				} else {
					s.state = stChunkEnd
				}
			}
		case stClose:
			s.wire += n
			s.cut = true
			return
		case stHead:
			// The bytes start or continue a header block: what follows
			// cannot be found until a record starts a message.
			d.stats.Lost++
			if len(s.msg) > 0 {
				d.passBytes(&c.meta[di], s.msg, emit)
			}
			s.reset()
			s.state, s.broken = stOpaque, true
			return
		default: // a chunk-size line, a chunk's end or trailers
			d.stats.Lost++
			s.cut = true
			d.emitH1(c, di, s, true, emit)
			s.reset()
			s.state, s.broken = stOpaque, true
			return
		}
	}
}

// feedBytes parses the payload of one record of direction di.
func (h *h1conn) feedBytes(d *Decoder, c *conn, di int, ev *sdk.Event, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	p := ev.Payload
	if s.state == stOpaque {
		want := clsResponse
		if s.request {
			want = clsRequest
		}
		if !s.broken || classify(p) != want {
			d.passRecord(ev, emit)
			return
		}
		s.state, s.broken = stHead, false
	}
	m := &c.meta[di]
	for len(p) > 0 {
		switch s.state {
		case stOpaque:
			d.passBytes(m, p, emit)
			return
		case stHead:
			if len(s.msg) == 0 {
				for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
					p = p[1:]
				}
				if len(p) == 0 {
					return
				}
			}
			end := s.scanHead(p)
			if end < 0 {
				if len(s.msg)+len(p) > d.maxHead() {
					h.fail(d, c, di, p, errTooLong, emit)
					return
				}
				s.msg = append(s.msg, p...)
				return
			}
			if len(s.msg)+end > d.maxHead() {
				h.fail(d, c, di, p, errTooLong, emit)
				return
			}
			s.msg = append(s.msg, p[:end]...)
			p = p[end:]
			done, tunnel, err := h.startBody(d, di)
			if err != nil {
				h.fail(d, c, di, p, err, emit)
				return
			}
			if done {
				h.complete(d, c, di, emit)
			}
			if tunnel {
				h.tunnel(d, c, emit)
			}
		case stBody, stChunkData:
			n := int(min(s.remaining, int64(len(p))))
			s.store(d, p[:n])
			s.wire += int64(n)
			s.remaining -= int64(n)
			p = p[n:]
			if s.remaining == 0 {
				if s.state == stBody {
					s.state = stHead
					h.complete(d, c, di, emit)
				} else {
					s.state = stChunkEnd
				}
			}
		case stClose:
			s.store(d, p)
			s.wire += int64(len(p))
			return
		case stChunkLine, stChunkEnd:
			j := bytes.IndexByte(p, '\n')
			if j < 0 {
				if len(s.line)+len(p) > maxLineBytes {
					h.fail(d, c, di, p, errChunk, emit)
					return
				}
				s.line = append(s.line, p...)
				s.wire += int64(len(p))
				return
			}
			s.line = append(s.line, p[:j+1]...)
			s.wire += int64(j + 1)
			p = p[j+1:]
			if err := s.endChunkLine(); err != nil {
				h.fail(d, c, di, p, err, emit)
				return
			}
		case stTrailer:
			end := s.scanHead(p)
			n := end
			if end < 0 {
				n = len(p)
			}
			if len(s.line)+n > d.maxHead() {
				h.fail(d, c, di, p, errTooLong, emit)
				return
			}
			s.line = append(s.line, p[:n]...)
			s.wire += int64(n)
			p = p[n:]
			if end >= 0 {
				if err := s.parseTrailers(); err != nil {
					h.fail(d, c, di, p, err, emit)
					return
				}
				s.state = stHead
				h.complete(d, c, di, emit)
			}
		}
	}
}

// scanHead looks for the blank line that ends a header block, carrying its
// progress over from the previous call. It returns the length of p up to
// and including the blank line, or -1.
func (s *h1dir) scanHead(p []byte) int {
	for i := 0; i < len(p); {
		switch s.hstate {
		case 0:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return -1
			}
			i += j + 1
			s.hstate = 1
		case 1, 2:
			b := p[i]
			i++
			switch {
			case b == '\n':
				s.hstate = 0
				return i
			case b == '\r' && s.hstate == 1:
				s.hstate = 2
			default:
				s.hstate = 0
			}
		}
	}
	return -1
}

// store appends body bytes to the message, up to MaxBuffer.
func (s *h1dir) store(d *Decoder, b []byte) {
	room := d.opts.MaxBuffer - len(s.msg)
	if len(b) > room {
		b = b[:max(room, 0)]
		s.truncated = true
	}
	s.msg = append(s.msg, b...)
}

// startBody parses the header block in msg and decides how the body is
// framed. done reports a message without body, to be completed at once;
// tunnel a response after which the connection is no longer HTTP.
func (h *h1conn) startBody(d *Decoder, di int) (done, tunnel bool, err error) {
	s := &h.dirs[di]
	s.headLen = len(s.msg)
	s.wire, s.truncated, s.cut = 0, false, false
	s.trailers = s.trailers[:0]
	if err := s.head.parse(d.headText(s.msg), s.request); err != nil {
		return false, false, err
	}
	hd := &s.head
	s.state = stHead
	if s.request {
		if len(h.methods) < maxPendingMethods {
			h.methods = append(h.methods, internMethod(hd.method))
		}
		switch {
		case hd.chunked:
			s.state = stChunkLine
		case hd.otherTE:
			return false, false, errTE
		case hd.contentLength > 0:
			s.state, s.remaining = stBody, hd.contentLength
		}
	} else {
		var method string
		if (hd.status >= 200 || hd.status == 101) && len(h.methods) > 0 {
			method = h.methods[0]
			n := copy(h.methods, h.methods[1:]) // short: at most maxPendingMethods
			h.methods = h.methods[:n]
		}
		tunnel = hd.status == 101 || method == "CONNECT" && hd.status/100 == 2
		switch {
		case tunnel || hd.status/100 == 1 || hd.status == 204 || hd.status == 304 || method == "HEAD":
		case hd.chunked:
			s.state = stChunkLine
		case hd.contentLength > 0:
			s.state, s.remaining = stBody, hd.contentLength
		case hd.contentLength < 0:
			s.state = stClose
		}
	}
	if s.state == stBody {
		// Room for the whole body at once, within reason: a hostile
		// Content-Length costs at most a few MiB before bytes arrive.
		want := s.headLen + int(min(s.remaining, int64(d.opts.MaxBuffer-s.headLen), 4<<20))
		if want > cap(s.msg) {
			s.msg = append(make([]byte, 0, want), s.msg...)
		}
	}
	return s.state == stHead, tunnel, nil
}

// tunnel makes both directions opaque after a 101 or a 2xx to CONNECT:
// what follows is another protocol.
func (h *h1conn) tunnel(d *Decoder, c *conn, emit func(*sdk.Event)) {
	for di := range h.dirs {
		h.flushDir(d, c, di, emit)
		h.dirs[di].state, h.dirs[di].broken = stOpaque, false
	}
}

// endChunkLine handles a complete line in stChunkLine or stChunkEnd.
func (s *h1dir) endChunkLine() error {
	line := bytes.TrimSuffix(s.line[:len(s.line)-1], []byte{'\r'})
	if s.state == stChunkEnd {
		if len(line) != 0 {
			return errChunk
		}
		s.state, s.line = stChunkLine, s.line[:0]
		return nil
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return errChunk
	}
	var n int64
	for _, b := range line {
		switch {
		case '0' <= b && b <= '9':
			n = n<<4 | int64(b-'0')
		case 'a' <= b && b <= 'f':
			n = n<<4 | int64(b-'a'+10)
		case 'A' <= b && b <= 'F':
			n = n<<4 | int64(b-'A'+10)
		default:
			return errChunk
		}
	}
	s.line = s.line[:0]
	if n == 0 {
		s.state, s.hstate = stTrailer, 1
		return nil
	}
	s.state, s.remaining = stChunkData, n
	return nil
}

// parseTrailers parses the trailer section gathered in line.
func (s *h1dir) parseTrailers() error {
	text := string(s.line)
	for len(text) > 0 {
		var ln string
		ln, text, _ = strings.Cut(text, "\n")
		ln = strings.TrimSuffix(ln, "\r")
		if ln == "" {
			break
		}
		name, value, ok := strings.Cut(ln, ":")
		if !ok || !isToken(name) {
			return errHeaderLine
		}
		s.trailers = append(s.trailers, hdr{name, strings.Trim(value, " \t")})
	}
	s.line = s.line[:0]
	return nil
}

// fail handles bytes that break the protocol: a message whose header
// block was good is emitted incomplete, and the bytes not shown in it are
// passed through with the field protocol_error. The direction then passes
// records through until one starts a message again.
func (h *h1conn) fail(d *Decoder, c *conn, di int, rest []byte, err error, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	d.stats.ProtocolErrors++
	if s.state != stHead {
		d.emitH1(c, di, s, true, emit)
		d.pay = append(append(d.pay[:0], s.line...), rest...)
	} else {
		d.pay = append(append(d.pay[:0], s.msg...), rest...)
	}
	d.passError(&c.meta[di], d.pay, fmt.Errorf("http/1: %w", err), emit)
	s.reset()
	s.state, s.broken = stOpaque, true
}

// reset forgets the current message.
func (s *h1dir) reset() {
	if cap(s.msg) > keepBufBytes {
		s.msg = nil
	}
	s.msg, s.line = s.msg[:0], s.line[:0]
	s.headLen, s.hstate, s.remaining, s.wire, s.truncated, s.cut = 0, 0, 0, 0, false, false
	s.state = stHead
	s.head.release()
}

// complete emits the message of direction di and readies the next.
func (h *h1conn) complete(d *Decoder, c *conn, di int, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	d.emitH1(c, di, s, false, emit)
	s.reset()
}

// flush emits what the connection holds; it is being dropped.
func (h *h1conn) flush(d *Decoder, c *conn, emit func(*sdk.Event)) {
	for di := range h.dirs {
		h.flushDir(d, c, di, emit)
	}
}

// flushDir emits what direction di holds: a response until close as it
// is, a message whose framing is not done as incomplete, a header block
// not done as bytes passed through.
func (h *h1conn) flushDir(d *Decoder, c *conn, di int, emit func(*sdk.Event)) {
	s := &h.dirs[di]
	switch s.state {
	case stOpaque:
		return
	case stHead:
		d.passBytes(&c.meta[di], s.msg, emit)
	case stClose:
		d.emitH1(c, di, s, false, emit)
	default:
		d.emitH1(c, di, s, true, emit)
	}
	s.reset()
}

// emitH1 emits the message in s.
func (d *Decoder) emitH1(c *conn, di int, s *h1dir, incomplete bool, emit func(*sdk.Event)) {
	hd := &s.head
	kind := KindResponse
	if s.request {
		kind = KindRequest
	}
	o := d.begin(&c.meta[di], kind)
	raw := s.msg[s.headLen:]
	encoding := hd.encoding
	if s.cut {
		encoding = "" // a body with holes is shown as captured
	}
	body, applied, dtrunc, derr := d.body.decode(raw, encoding, d.opts.MaxBuffer)
	if applied != "" {
		d.pay = append(append(d.pay[:0], s.msg[:s.headLen]...), body...)
		o.Payload = d.pay
	} else {
		o.Payload = s.msg
	}
	o.AddField("proto", hd.proto)
	if s.request {
		o.AddField("method", hd.method)
		o.AddField("path", hd.target)
		if hd.host != "" {
			o.AddField("host", hd.host)
		}
	} else {
		o.AddField("status", d.itoa(0, int64(hd.status)))
	}
	d.addBodyFields(o, len(body), s.wire, applied, derr, s.truncated || dtrunc || s.cut, incomplete)
	if (s.truncated || s.cut) && applied == "" {
		// The body is shown as captured: its real length is known.
		o.AddField(fieldPayloadBytes, d.itoa(3, int64(s.headLen)+s.wire))
	}
	for i, f := range hd.headers {
		o.AddField(d.h1HeaderKey(s.request, i, f.name), f.value)
	}
	for _, f := range s.trailers {
		o.AddField(d.fieldKey("trailer.", f.name), f.value)
	}
	d.stats.HTTP1Messages++
	d.send(o, emit)
}

// addBodyFields adds the fields every message has about its body.
func (d *Decoder) addBodyFields(o *sdk.Event, n int, wire int64, applied string, derr error, truncated, incomplete bool) {
	o.AddField("body_bytes", d.itoa(1, int64(n)))
	o.AddField("wire_body_bytes", d.itoa(2, wire))
	if applied != "" {
		o.AddField("content_encoding", applied)
	}
	if derr != nil {
		d.stats.DecodeErrors++
		o.AddField("decode_error", derr.Error())
	}
	if truncated {
		d.stats.Truncated++
		o.AddField("truncated", "true")
	}
	if incomplete {
		o.AddField("incomplete", "true")
	}
}

// release drops the strings of the last header block parsed, which keep
// their arena (Decoder.headText) alive. Entries of headers beyond its
// length are always zero.
func (hd *h1head) release() {
	clear(hd.headers)
	*hd = h1head{headers: hd.headers[:0], contentLength: -1}
}

// parse parses a header block, start line first. text is owned by hd.
func (hd *h1head) parse(text string, request bool) error {
	hd.release()
	line, text := cutLine(text)
	if request {
		method, rest, ok1 := strings.Cut(line, " ")
		target, version, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || !isToken(method) || !isTarget(target) || !isVersion(version) {
			return errStartLine
		}
		hd.method, hd.target, hd.proto = method, target, version
	} else {
		version, rest, _ := strings.Cut(line, " ")
		code, _, _ := strings.Cut(rest, " ")
		if !isVersion(version) || len(code) != 3 {
			return errStartLine
		}
		for i := 0; i < 3; i++ {
			if code[i] < '0' || code[i] > '9' {
				return errStartLine
			}
			hd.status = hd.status*10 + int(code[i]-'0')
		}
		if hd.status < 100 {
			return errStartLine
		}
		hd.proto = version
	}
	for len(text) > 0 {
		line, text = cutLine(text)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: a continuation of the previous field's value
			if len(hd.headers) == 0 {
				return errHeaderLine
			}
			last := &hd.headers[len(hd.headers)-1]
			last.value = strings.TrimRight(last.value+" "+trimOWS(line), " ")
			continue
		}
		i := strings.IndexByte(line, ':')
		if i < 0 || !isToken(line[:i]) {
			return errHeaderLine
		}
		hd.headers = append(hd.headers, hdr{line[:i], trimOWS(line[i+1:])})
	}
	// Framing is read once all lines are in: an obs-fold line may extend
	// the value before it.
	var te string
	for _, f := range hd.headers {
		// Names are tokens, ASCII: names of another length cannot match.
		switch len(f.name) {
		case len("Content-Length"):
			if strings.EqualFold(f.name, "Content-Length") {
				n, err := parseContentLength(f.value)
				if err != nil || hd.contentLength >= 0 && hd.contentLength != n {
					return errContentLength
				}
				hd.contentLength = n
			}
		case len("Transfer-Encoding"):
			if strings.EqualFold(f.name, "Transfer-Encoding") {
				te = joinList(te, f.value)
			}
		case len("Content-Encoding"):
			if strings.EqualFold(f.name, "Content-Encoding") {
				hd.encoding = joinList(hd.encoding, f.value)
			}
		case len("Host"):
			if hd.host == "" && strings.EqualFold(f.name, "Host") {
				hd.host = f.value
			}
		}
	}
	if te != "" {
		last := te
		if i := strings.LastIndexByte(te, ','); i >= 0 {
			last = te[i+1:]
		}
		if strings.EqualFold(trimOWS(last), "chunked") {
			hd.chunked = true
		} else {
			hd.otherTE = true
		}
		hd.contentLength = -1
	}
	return nil
}

// cutLine returns the first line of s without its line break (LF or CR LF),
// and what follows it.
func cutLine(s string) (line, rest string) {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line, rest = s[:i], s[i+1:]
	} else {
		line = s
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// trimOWS removes spaces and tabs around s.
func trimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

func joinList(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}

// parseContentLength accepts digits, or a list of identical values.
func parseContentLength(v string) (int64, error) {
	if strings.IndexByte(v, ',') < 0 { // the usual single value
		return parseLength(v)
	}
	n := int64(-1)
	for part := range strings.SplitSeq(v, ",") {
		m, err := parseLength(part)
		if err != nil {
			return 0, err
		}
		if n >= 0 && m != n {
			return 0, fmt.Errorf("conflicting values %q: %w", v, errContentLength)
		}
		n = m
	}
	return n, nil
}

// parseLength parses one value of Content-Length.
func parseLength(v string) (int64, error) {
	v = trimOWS(v)
	if v == "" || len(v) > 18 {
		return 0, errContentLength
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, errContentLength
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// tokenChars is isTokenChar as a table, for the loops over header names.
var tokenChars = func() (t [256]bool) {
	for c := range t {
		t[c] = isTokenChar(byte(c))
	}
	return t
}()

func isTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func isVersion(s string) bool {
	return s == "HTTP/1.1" || s == "HTTP/1.0"
}

// internMethod returns a constant for common methods, so the queue of
// pending methods does not pin header blocks in memory.
func internMethod(m string) string {
	for _, k := range [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"} {
		if m == k {
			return k
		}
	}
	return strings.Clone(m)
}
