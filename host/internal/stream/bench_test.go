package stream

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
)

// BenchmarkHTTP1 decodes keep-alive exchanges with 1 KiB responses on one
// connection, a request record and a response record each.
func BenchmarkHTTP1(b *testing.B) {
	req := rec(1, egress, []byte("GET /api/item HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"))
	resp := rec(1, ingress, fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1024\r\n"+
		"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: bench\r\n\r\n%s", strings.Repeat("x", 1024)))
	d := New(Options{})
	n := 0
	emit := func(*sdk.Event) { n++ }
	b.SetBytes(int64(len(req.Payload) + len(resp.Payload)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(req, emit)
		d.Feed(resp, emit)
	}
	if n != 2*b.N {
		b.Fatalf("emitted %d events for %d exchanges", n, b.N)
	}
}

// BenchmarkLargeBody decodes a 1 MiB body arriving in 64 records: the cost
// per byte must not grow with the body.
func BenchmarkLargeBody(b *testing.B) {
	body := strings.Repeat("0123456789abcdef", 1<<16)
	msg := []byte(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	var recs []*sdk.Event
	for p := msg; len(p) > 0; {
		k := min(16<<10, len(p))
		recs = append(recs, rec(1, egress, p[:k]))
		p = p[k:]
	}
	d := New(Options{})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			d.Feed(r, func(*sdk.Event) {})
		}
	}
}

// BenchmarkHTTP2 decodes GET /hello exchanges, whole records.
func BenchmarkHTTP2(b *testing.B) {
	c, s := newPeer(true), newPeer(false)
	c.fr.WriteSettings()
	s.fr.WriteSettings()
	d := New(Options{})
	emit := func(*sdk.Event) {}
	d.Feed(rec(1, egress, []byte(c.take())), emit)
	d.Feed(rec(1, ingress, []byte(s.take())), emit)
	b.ReportAllocs()
	sid := uint32(1)
	for b.Loop() {
		c.headers(sid, true, getHello...)
		s.headers(sid, false, ":status", "200", "content-type", "text/plain")
		s.fr.WriteData(sid, true, []byte("hi"))
		d.Feed(rec(1, egress, []byte(c.take())), emit)
		d.Feed(rec(1, ingress, []byte(s.take())), emit)
		sid += 2
	}
}
