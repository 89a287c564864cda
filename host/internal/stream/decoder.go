package stream

import (
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ecaphost/ecaphost/sdk"
)

// Event kinds of decoded messages.
const (
	KindRequest  = "http_request"
	KindResponse = "http_response"
)

// Defaults of Options.
const (
	DefaultMaxBuffer = 16 << 20
	DefaultMaxConns  = 4096
	DefaultIdleFlush = 2 * time.Second
)

const (
	maxHeadBytes   = 256 << 10 // an HTTP/1 header block, or an HTTP/2 header list
	maxLineBytes   = 8 << 10   // a chunk-size line; a request line while detecting
	maxHeldBytes   = 64 << 10  // record bytes held while the protocol is unknown
	maxHeldRecords = 64
	keepBufBytes   = 1 << 20 // larger buffers are released once their message is out
)

// Options bound a Decoder. Zero fields take their defaults.
type Options struct {
	// MaxBuffer bounds the bytes of message one direction of a
	// connection holds, and the size of a decoded body. Default 16 MiB.
	MaxBuffer int
	// MaxConns bounds the connections tracked at once. Default 4096.
	MaxConns int
	// IdleFlush is how long a connection stays quiet before Flush emits
	// what it holds. Default 2s.
	IdleFlush time.Duration
	// Now is the clock that stamps a connection's last activity in Feed
	// and that Flush's now is compared with. Capture timestamps are not
	// used, as they may be skewed against the host clock. Default time.Now.
	Now func() time.Time
}

// Stats are cumulative counters of a Decoder, except Conns.
type Stats struct {
	HTTP1Messages    uint64 // HTTP/1 messages emitted
	HTTP2Messages    uint64 // HTTP/2 messages emitted
	PassthroughBytes uint64 // record bytes emitted undecoded
	Truncated        uint64 // messages emitted truncated: a buffer overflowed, or bytes were not captured
	Lost             uint64 // times bytes not captured hid the framing: a direction stopped decoding until a message starts (HTTP/1) or for good (HTTP/2)
	Evicted          uint64 // connections evicted to respect MaxConns
	ProtocolErrors   uint64 // times a direction stopped decoding on bytes that broke the protocol
	DecodeErrors     uint64 // bodies shown as captured because their content coding failed
	Conns            int    // connections tracked now
}

// Decoder joins a module's stream records per connection and direction and
// decodes the protocols they carry.
//
// A Decoder is not safe for concurrent use: one Decoder serves one module's
// stream of events. It starts no goroutines.
type Decoder struct {
	opts  Options
	conns map[connKey]*conn
	head  *conn // most recently used
	tail  *conn // least recently used
	stats Stats

	out  sdk.Event // emitted events, reused
	pay  []byte    // payload being built, reused
	body bodyDecoder
	keys map[string]fieldName // header name -> its field key, cached
	// h1names is the name last seen at each position of the header blocks
	// of HTTP/1 requests (0) and responses (1): the messages of a
	// keep-alive connection, or of one kind of client or server, repeat
	// their headers in the same order, so a comparison finds the key.
	h1names [2][16]fieldName
	nums    [5]numCache
	heads   []byte // HTTP/1 header blocks, append-only: see headText
}

// headArenaBytes is the size of the arenas HTTP/1 header blocks are
// copied to; a block over a quarter of it gets its own copy.
const headArenaBytes = 32 << 10

// headText returns b as a string the parsed header fields can point into.
// Blocks are copied one after the other into an arena whose bytes are
// never written again, so a string stays valid for as long as it is held
// (unlike one pointing into the message buffer, which the next message
// overwrites), at one allocation for many blocks instead of one each. A
// held string keeps its whole arena alive: what holds one past its
// message (h1head) lets go when the message is out.
func (d *Decoder) headText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > cap(d.heads)-len(d.heads) {
		if len(b) > headArenaBytes/4 {
			return string(b)
		}
		d.heads = make([]byte, 0, headArenaBytes)
	}
	n := len(d.heads)
	d.heads = append(d.heads, b...)
	return unsafe.String(&d.heads[n], len(b))
}

// fieldName is a header name and its field key. name does not share a
// header block, so that a cache holding it does not pin one in memory.
type fieldName struct{ name, key string }

type connKey struct {
	pid uint32
	id  uint64
}

type proto uint8

const (
	protoDetect proto = iota
	protoOpaque
	protoHTTP1
	protoHTTP2
)

// conn is the state of one connection.
type conn struct {
	key        connKey
	prev, next *conn
	last       time.Time
	proto      proto
	meta       [2]sdk.Event // last record per direction, without Payload and Fields
	held       []*sdk.Event // records kept while detecting
	heldBytes  int
	h1         *h1conn
	h2         *h2conn
}

// New returns a Decoder bounded by opts.
func New(opts Options) *Decoder {
	if opts.MaxBuffer <= 0 {
		opts.MaxBuffer = DefaultMaxBuffer
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.IdleFlush <= 0 {
		opts.IdleFlush = DefaultIdleFlush
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Decoder{
		opts:  opts,
		conns: make(map[connKey]*conn),
		keys:  make(map[string]fieldName),
	}
}

// Stats returns the counters.
func (d *Decoder) Stats() Stats {
	s := d.stats
	s.Conns = len(d.conns)
	return s
}

// dirIndex maps a direction to 0 (egress) or 1 (ingress), -1 if unknown.
func dirIndex(dir sdk.Direction) int {
	switch dir {
	case sdk.DirectionEgress:
		return 0
	case sdk.DirectionIngress:
		return 1
	}
	return -1
}

// Feed takes one RouteStream record and calls emit for every event ready
// now: decoded messages, or records passed through. ev is not kept after
// Feed returns. An emitted event is valid only during the emit call, and
// emit must not call back into the Decoder.
func (d *Decoder) Feed(ev *sdk.Event, emit func(*sdk.Event)) {
	di := dirIndex(ev.Conn.Direction)
	if ev.Conn.ID == 0 || di < 0 {
		d.passRecord(ev, emit)
		return
	}
	key := connKey{pid: ev.PID, id: ev.Conn.ID}
	c := d.head
	if c == nil || c.key != key { // else the record continues the last one's connection
		c = d.conns[key]
		if c == nil {
			if len(d.conns) >= d.opts.MaxConns && d.tail != nil {
				d.stats.Evicted++
				d.drop(d.tail, emit)
			}
			c = &conn{key: key}
			d.conns[key] = c
		} else {
			d.unlink(c)
		}
		d.pushFront(c)
	}
	c.last = d.opts.Now()
	d.dispatch(c, di, ev, emit)
}

// dispatch hands a record to the connection's protocol.
func (d *Decoder) dispatch(c *conn, di int, ev *sdk.Event, emit func(*sdk.Event)) {
	m := &c.meta[di]
	*m = *ev
	m.Payload, m.Fields = nil, nil
	switch c.proto {
	case protoDetect:
		d.detect(c, di, ev, emit)
	case protoOpaque:
		d.passRecord(ev, emit)
	case protoHTTP1:
		c.h1.feed(d, c, di, ev, emit)
	case protoHTTP2:
		c.h2.feed(d, c, di, ev, emit)
	}
}

// Flush emits what connections idle since before now-IdleFlush hold and
// drops their state; with all it does so for every connection (shutdown).
// An idle HTTP/2 connection keeps its framing and HPACK state, so that it
// still decodes when it wakes up; its open streams are emitted, marked
// incomplete, and dropped.
func (d *Decoder) Flush(now time.Time, all bool, emit func(*sdk.Event)) {
	cutoff := now.Add(-d.opts.IdleFlush)
	for c := d.tail; c != nil; {
		prev := c.prev
		if !all && !c.last.Before(cutoff) {
			break // the list is ordered by last activity
		}
		if !all && c.proto == protoHTTP2 {
			c.h2.flushStreams(d, c, emit)
		} else {
			d.drop(c, emit)
		}
		c = prev
	}
}

// drop emits what c holds and forgets it.
func (d *Decoder) drop(c *conn, emit func(*sdk.Event)) {
	switch c.proto {
	case protoDetect:
		for _, h := range c.held {
			d.passRecord(h, emit)
		}
		c.held = nil
	case protoHTTP1:
		c.h1.flush(d, c, emit)
	case protoHTTP2:
		c.h2.flushStreams(d, c, emit)
		c.h2.flushRaw(d, c, emit)
	}
	d.unlink(c)
	delete(d.conns, c.key)
}

func (d *Decoder) pushFront(c *conn) {
	c.prev, c.next = nil, d.head
	if d.head != nil {
		d.head.prev = c
	}
	d.head = c
	if d.tail == nil {
		d.tail = c
	}
}

func (d *Decoder) unlink(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if d.head == c {
		d.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if d.tail == c {
		d.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// fieldPayloadBytes is the field a module sets on a record whose end it
// did not copy (tlsrecord.FieldPayloadBytes, on the last record of a call
// the kernel cut to max_data or while its buffer was filling): the length
// the payload had. The decoders skip the missing bytes, and set it on the
// messages they emit truncated with the length they had.
const fieldPayloadBytes = "payload_bytes"

// missing returns how many bytes of its stream follow ev's payload without
// having been captured: payload_bytes less the payload's length; 0 for a
// whole record or a value that is not a length longer than the payload.
func missing(ev *sdk.Event) int64 {
	for i := range ev.Fields {
		if f := &ev.Fields[i]; f.Key == fieldPayloadBytes {
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err != nil || n <= int64(len(ev.Payload)) {
				return 0
			}
			return n - int64(len(ev.Payload))
		}
	}
	return 0
}

// passRecord emits a record unchanged.
func (d *Decoder) passRecord(ev *sdk.Event, emit func(*sdk.Event)) {
	d.stats.PassthroughBytes += uint64(len(ev.Payload))
	emit(ev)
}

// passBytes emits bytes that could not be decoded as a record of their own,
// with the metadata and Kind of the record m describes.
func (d *Decoder) passBytes(m *sdk.Event, b []byte, emit func(*sdk.Event)) {
	if len(b) == 0 {
		return
	}
	o := d.begin(m, m.Kind)
	o.Payload = b
	d.stats.PassthroughBytes += uint64(len(b))
	d.send(o, emit)
}

// passError is passBytes for bytes that broke the protocol: they carry
// the field protocol_error.
func (d *Decoder) passError(m *sdk.Event, b []byte, err error, emit func(*sdk.Event)) {
	if len(b) == 0 {
		return
	}
	o := d.begin(m, m.Kind)
	o.Payload = b
	o.AddField("protocol_error", err.Error())
	d.stats.PassthroughBytes += uint64(len(b))
	d.send(o, emit)
}

// send emits the output event, then lets go of its payload and of the
// scratch buffers a large message grew.
func (d *Decoder) send(o *sdk.Event, emit func(*sdk.Event)) {
	emit(o)
	o.Payload = nil
	if cap(d.pay) > keepBufBytes {
		d.pay = nil
	}
	d.body.release()
}

// begin prepares the reused output event with the metadata of m.
func (d *Decoder) begin(m *sdk.Event, kind string) *sdk.Event {
	o := &d.out
	fields := o.Fields[:0]
	*o = *m
	o.Kind = kind
	o.Payload = nil
	o.Fields = fields
	return o
}

// fieldKey returns prefix+canonical(name), cached for the common case.
func (d *Decoder) fieldKey(prefix, name string) string {
	if prefix == "header." {
		return d.headerName(name).key
	}
	return prefix + canonicalName(name)
}

// headerName returns the field key of the header name. The name it returns
// is the cache's copy of name, or "" when name is not cached.
func (d *Decoder) headerName(name string) fieldName {
	if f, ok := d.keys[name]; ok {
		return f
	}
	k := "header." + canonicalName(name)
	if len(d.keys) < 512 && len(name) <= 64 {
		f := fieldName{strings.Clone(name), k} // name may share a whole header block
		d.keys[f.name] = f
		return f
	}
	return fieldName{key: k}
}

// h1HeaderKey is fieldKey("header.", name) for the header at position i
// of an HTTP/1 request's or response's header block.
func (d *Decoder) h1HeaderKey(request bool, i int, name string) string {
	names := &d.h1names[1]
	if request {
		names = &d.h1names[0]
	}
	if i >= len(names) {
		return d.headerName(name).key
	}
	slot := &names[i]
	if slot.name == name && slot.key != "" {
		return slot.key
	}
	f := d.headerName(name)
	if f.name != "" {
		*slot = f
	}
	return f.key
}

// numCache remembers the decimal form of the last number it formatted, as
// consecutive messages often have the same lengths.
type numCache struct {
	n int64
	s string
}

func (d *Decoder) itoa(slot int, n int64) string {
	if n < 100 {
		return strconv.FormatInt(n, 10) // small numbers do not allocate
	}
	c := &d.nums[slot]
	if c.s == "" || c.n != n {
		c.n, c.s = n, strconv.FormatInt(n, 10)
	}
	return c.s
}

// canonicalName is textproto's canonical form of a header name for tokens
// ("content-type" -> "Content-Type"); other names are kept as they are.
func canonicalName(name string) string {
	upper := true
	ok := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenChar(c) {
			return name
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			ok = false
		}
		upper = c == '-'
	}
	if ok {
		return name
	}
	b := []byte(name)
	upper = true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
