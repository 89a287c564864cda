package stream

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

// Fuzz scripts are a sequence of commands: a control byte, then the bytes
// of one record. Control bits: 0 direction (0 egress, 1 ingress); 1-2
// connection id (0 is "unknown"); 3 an idle Flush before the record; 4-7
// an index into fuzzSizes, the record's length.
var fuzzSizes = [16]int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597}

const fuzzMaxBuffer = 4096

// script encodes parts as a fuzz script on connection id with records of
// fuzzSizes[size] bytes.
func script(parts []part, id byte, size int) []byte {
	var out []byte
	for _, p := range parts {
		data := p.data
		for len(data) > 0 {
			ctl := id<<1 | byte(size)<<4
			if p.dir == ingress {
				ctl |= 1
			}
			n := min(fuzzSizes[size], len(data))
			out = append(out, ctl)
			out = append(out, data[:n]...)
			data = data[n:]
		}
	}
	return out
}

func FuzzDecoder(f *testing.F) {
	h1 := []part{
		{egress, getReq + "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("body of the post", 5, "X-T: 1\r\n")},
		{ingress, okResp + "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 43\r\n\r\n" + gzipped("hello hello hello hello")},
		{ingress, "HTTP/1.1 200 OK\r\n\r\nuntil close"},
	}
	f.Add(script(h1, 1, 0))
	f.Add(script(h1, 2, 3))
	f.Add(script(h1, 3, 9))
	h2 := helloConv()
	f.Add(script(h2, 1, 2))
	f.Add(script(h2, 1, 15))
	f.Add(append(script(h2, 1, 6), script(h1, 2, 4)...))
	f.Add(script([]part{{egress, "\x16\x03\x01 binary"}}, 0, 5))

	f.Fuzz(func(t *testing.T, s []byte) {
		now := t0
		d := New(Options{MaxBuffer: fuzzMaxBuffer, MaxConns: 2, Now: func() time.Time { return now }})
		emit := func(ev *sdk.Event) {
			// An event holds a message (head and body each within
			// MaxBuffer) or the bytes of records passed through.
			if len(ev.Payload) > 2*fuzzMaxBuffer+2048 {
				t.Fatalf("emitted %d bytes", len(ev.Payload))
			}
			if ev.Conn.Direction == sdk.DirectionUnknown {
				t.Fatalf("emitted event without direction")
			}
		}
		for len(s) > 0 {
			ctl := s[0]
			n := min(fuzzSizes[ctl>>4], len(s)-1)
			payload := s[1 : 1+n]
			s = s[1+n:]
			if ctl&8 != 0 {
				now = now.Add(3 * time.Second)
				d.Flush(now, false, emit)
			}
			dir := egress
			if ctl&1 != 0 {
				dir = ingress
			}
			d.Feed(rec(uint64(ctl>>1&3), dir, payload), emit)
			// Two connections, each direction within its buffers, plus
			// records held while detecting.
			if fp := d.footprint(); fp > 2*(maxHeldBytes+2*fuzzMaxBuffer+fuzzMaxBuffer+2*(9+fuzzMaxBuffer)) {
				t.Fatalf("decoder holds %d bytes", fp)
			}
			if c := d.Stats().Conns; c > 2 {
				t.Fatalf("%d connections tracked, max 2", c)
			}
		}
		d.Flush(now, true, emit)
		if c := d.Stats().Conns; c != 0 {
			t.Fatalf("%d connections after flushing all", c)
		}
	})
}

// FuzzDecoderCut runs scripts as FuzzDecoder's, but control bit 3 marks a
// record whose call a module cut: a byte m follows the control byte, and
// m*37+1 bytes of the stream after the record's were not copied (the
// field payload_bytes). The decoder must stay within its bounds and never
// panic, whatever the holes hide.
func FuzzDecoderCut(f *testing.F) {
	body := strings.Repeat("0123456789", 300)
	h1 := []part{
		{egress, getReq},
		{ingress, "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + body},
		{egress, "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 700, "")},
	}
	cut := func(s []byte) []byte { // every 5th record cut, missing 38 bytes
		var out []byte
		for i := 0; len(s) > 0; i++ {
			n := 1 + min(fuzzSizes[s[0]>>4], len(s)-1)
			if i%5 == 4 {
				out = append(out, s[0]|8, 1)
			} else {
				out = append(out, s[0])
			}
			out = append(out, s[1:n]...)
			s = s[n:]
		}
		return out
	}
	f.Add(cut(script(h1, 1, 12)))
	f.Add(cut(script(helloConv(), 1, 9)))
	f.Fuzz(func(t *testing.T, s []byte) {
		d := New(Options{MaxBuffer: fuzzMaxBuffer, MaxConns: 2, Now: func() time.Time { return t0 }})
		emit := func(ev *sdk.Event) {
			if len(ev.Payload) > 2*fuzzMaxBuffer+2048 {
				t.Fatalf("emitted %d bytes", len(ev.Payload))
			}
		}
		for len(s) > 0 {
			ctl := s[0]
			s = s[1:]
			missing := 0
			if ctl&8 != 0 && len(s) > 0 {
				missing = int(s[0])*37 + 1
				s = s[1:]
			}
			n := min(fuzzSizes[ctl>>4], len(s))
			payload := s[:n]
			s = s[n:]
			dir := egress
			if ctl&1 != 0 {
				dir = ingress
			}
			ev := rec(uint64(ctl>>1&3), dir, payload)
			if missing > 0 {
				ev.AddField("truncated", "true")
				ev.AddField(fieldPayloadBytes, strconv.Itoa(n+missing))
			}
			d.Feed(ev, emit)
			if fp := d.footprint(); fp > 2*(maxHeldBytes+2*fuzzMaxBuffer+fuzzMaxBuffer+2*(9+fuzzMaxBuffer)) {
				t.Fatalf("decoder holds %d bytes", fp)
			}
		}
		d.Flush(t0, true, emit)
		if c := d.Stats().Conns; c != 0 {
			t.Fatalf("%d connections after flushing all", c)
		}
	})
}
