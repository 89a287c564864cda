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

// BenchmarkHTTP1Nginx is closer to nginx serving 1 KiB files to wrk over
// keep-alive with both ends captured: 64 connections, each seen by the
// client (requests egress) and by the server (requests ingress), each
// message in one record, responses with nginx's 8 headers. An op is one
// exchange seen from both ends, in the order the records are written and
// read: four messages.
func BenchmarkHTTP1Nginx(b *testing.B) {
	req := []byte("GET /static/file-1k.bin HTTP/1.1\r\nHost: bench.example.internal:8443\r\n\r\n")
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Tue, 25 Nov 2025 21:44:00 GMT\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\nLast-Modified: Tue, 25 Nov 2025 20:00:00 GMT\r\n"+
		"Connection: keep-alive\r\nETag: \"6925fa00-400\"\r\nAccept-Ranges: bytes\r\n\r\n%s", strings.Repeat("x", 1024))
	const conns = 64
	var recs [conns][4]*sdk.Event
	for i := range recs {
		id := uint64(100 + i)
		client := func(ev *sdk.Event) *sdk.Event { ev.PID, ev.Comm = 4242, "wrk"; return ev }
		server := func(ev *sdk.Event) *sdk.Event { ev.PID, ev.Comm = 80, "nginx"; return ev }
		recs[i] = [4]*sdk.Event{
			client(rec(id, egress, req)), server(rec(id, ingress, req)),
			server(rec(id, egress, resp)), client(rec(id, ingress, resp)),
		}
	}
	d := New(Options{})
	n := 0
	emit := func(*sdk.Event) { n++ }
	b.SetBytes(2 * int64(len(req)+len(resp)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for _, r := range recs[i] {
			d.Feed(r, emit)
		}
		if i++; i == conns {
			i = 0
		}
	}
	if n != 4*b.N {
		b.Fatalf("emitted %d events for %d exchanges", n, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/msg")
}
