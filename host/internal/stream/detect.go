package stream

import (
	"github.com/ecaphost/ecaphost/sdk"
)

// h2Preface is what an HTTP/2 client sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// class is what the first bytes of one direction look like.
type class uint8

const (
	clsNeedMore class = iota // a prefix of something known
	clsUnknown
	clsRequest  // an HTTP/1.x request line
	clsResponse // an HTTP/1.x status line
	clsPreface  // the HTTP/2 client preface
	clsSettings // an HTTP/2 SETTINGS frame, as a server sends first
)

// classify looks at the first bytes of one direction of a connection.
func classify(b []byte) class {
	if len(b) == 0 {
		return clsNeedMore
	}
	switch b[0] {
	case 'P':
		n := min(len(b), len(h2Preface))
		if string(b[:n]) == h2Preface[:n] {
			if n == len(h2Preface) {
				return clsPreface
			}
			return clsNeedMore
		}
	case 'H':
		if c := classifyStatusLine(b); c != clsUnknown {
			return c
		}
	case 0:
		return classifySettings(b)
	}
	return classifyRequestLine(b)
}

// classifyStatusLine matches "HTTP/1.0 " or "HTTP/1.1 ".
func classifyStatusLine(b []byte) class {
	const prefix = "HTTP/1."
	for i := 0; i < len(b) && i < 9; i++ {
		c := b[i]
		switch {
		case i < len(prefix):
			if c != prefix[i] {
				return clsUnknown
			}
		case i == 7:
			if c != '0' && c != '1' {
				return clsUnknown
			}
		case i == 8:
			if c != ' ' {
				return clsUnknown
			}
			return clsResponse
		}
	}
	return clsNeedMore
}

// classifySettings matches the header of a SETTINGS frame on stream 0.
func classifySettings(b []byte) class {
	if len(b) < 9 {
		return clsNeedMore
	}
	n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	if b[3] == frameSettings && b[4] == 0 && n%6 == 0 && n <= 16384 &&
		b[5]&0x7f == 0 && b[6] == 0 && b[7] == 0 && b[8] == 0 {
		return clsSettings
	}
	return clsUnknown
}

// classifyRequestLine matches "METHOD SP target SP HTTP/1.x (CR)LF".
func classifyRequestLine(b []byte) class {
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	if i == len(b) {
		if i > 32 {
			return clsUnknown
		}
		return clsNeedMore
	}
	if i == 0 || i > 32 || b[i] != ' ' {
		return clsUnknown
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	if i-start > maxLineBytes {
		return clsUnknown
	}
	if i == len(b) {
		return clsNeedMore
	}
	if i == start || b[i] != ' ' {
		return clsUnknown
	}
	i++
	const version = "HTTP/1.x\r\n"
	for j := 0; j < len(version); j, i = j+1, i+1 {
		if i == len(b) {
			return clsNeedMore
		}
		c := b[i]
		switch {
		case j == 7:
			if c != '0' && c != '1' {
				return clsUnknown
			}
		case j == 8:
			if c == '\n' {
				return clsRequest
			}
			if c != '\r' {
				return clsUnknown
			}
		case c != version[j]:
			return clsUnknown
		}
	}
	return clsRequest
}

// detect holds the records of a connection until the first bytes of one
// direction tell its protocol, then replays them to that protocol.
func (d *Decoder) detect(c *conn, di int, ev *sdk.Event, emit func(*sdk.Event)) {
	if len(ev.Payload) == 0 {
		return
	}
	if len(c.held) == 0 {
		// The common case: the first record decides alone.
		var cls [2]class
		cls[di], cls[1-di] = classify(ev.Payload), clsNeedMore
		if d.decide(c, cls, emit) {
			d.dispatch(c, di, ev, emit)
			return
		}
		if c.proto == protoOpaque {
			d.passRecord(ev, emit)
			return
		}
	}
	c.held = append(c.held, ev.Clone())
	c.heldBytes += len(ev.Payload)
	if len(c.held) > 1 {
		var cls [2]class
		var buf [2][]byte
		for _, h := range c.held {
			i := dirIndex(h.Conn.Direction)
			if len(buf[i]) < maxLineBytes+64 {
				buf[i] = append(buf[i], h.Payload...)
			}
		}
		cls[0], cls[1] = classify(buf[0]), classify(buf[1])
		if d.decide(c, cls, emit) {
			held := c.held
			c.held, c.heldBytes = nil, 0
			for _, h := range held {
				d.dispatch(c, dirIndex(h.Conn.Direction), h, emit)
			}
			return
		}
	}
	if c.proto == protoDetect && (c.heldBytes > maxHeldBytes || len(c.held) > maxHeldRecords) {
		c.proto = protoOpaque
	}
	if c.proto == protoOpaque {
		for _, h := range c.held {
			d.passRecord(h, emit)
		}
		c.held, c.heldBytes = nil, 0
	}
}

// decide sets c's protocol from the classes of its two directions. It
// returns true when c is to be decoded from now on, false while still
// detecting or once c is opaque.
func (d *Decoder) decide(c *conn, cls [2]class, emit func(*sdk.Event)) bool {
	for i, k := range cls {
		switch k {
		case clsPreface:
			c.proto = protoHTTP2
			c.h2 = newH2conn(d, i)
			return true
		}
	}
	for i, k := range cls {
		switch k {
		case clsRequest:
			c.proto, c.h1 = protoHTTP1, newH1conn(i)
			return true
		case clsResponse:
			c.proto, c.h1 = protoHTTP1, newH1conn(1-i)
			return true
		}
	}
	if cls[0] == clsUnknown || cls[1] == clsUnknown {
		c.proto = protoOpaque
	}
	return false
}
