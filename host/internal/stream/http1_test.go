package stream

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

// want is an expected event: its kind, direction, the fields listed (others
// may be present, but a key listed with "" must be absent) and its payload.
type want struct {
	kind    string
	dir     sdk.Direction
	fields  map[string]string
	payload string
}

const (
	getReq  = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
	okHead  = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
	okResp  = okHead + "hello"
	gzBody  = "hello from a gzip body, hello from a gzip body\n"
	longStr = "0123456789abcdef"
)

func TestHTTP1(t *testing.T) {
	gz := gzipped(gzBody)
	gzChunked := chunked(gz, 10, "X-Checksum: abc\r\n")
	big := strings.Repeat(longStr, 250) // 4000 bytes
	bigHead := "HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n"

	tests := []struct {
		name   string
		opts   Options
		parts  []part
		split  int  // record size, 0: one record per part
		flush  bool // Flush(all) at the end
		want   []want
		absent []string // fields that must not be on any event
		stats  Stats    // checked when non-zero
	}{
		{
			name:  "request and response with Content-Length",
			parts: []part{{egress, getReq}, {ingress, okResp}},
			want: []want{
				{KindRequest, egress, map[string]string{
					"proto": "HTTP/1.1", "method": "GET", "path": "/index.html", "host": "example.com",
					"header.User-Agent": "curl/8.5.0", "header.Accept": "*/*", "body_bytes": "0", "wire_body_bytes": "0",
				}, getReq},
				{KindResponse, ingress, map[string]string{
					"proto": "HTTP/1.1", "status": "200", "header.Content-Type": "text/plain",
					"header.Content-Length": "5", "body_bytes": "5", "wire_body_bytes": "5",
					"content_encoding": "", "truncated": "", "incomplete": "",
				}, okResp},
			},
			stats: Stats{HTTP1Messages: 2},
		},
		{
			name: "chunked response with gzip and trailer",
			parts: []part{{egress, getReq}, {ingress, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n" +
				"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" + gzChunked}},
			split: 7,
			want: []want{
				{KindRequest, egress, nil, getReq},
				{KindResponse, ingress, map[string]string{
					"status": "200", "content_encoding": "gzip", "body_bytes": fmt.Sprint(len(gzBody)),
					"wire_body_bytes": fmt.Sprint(len(gzChunked)), "trailer.X-Checksum": "abc",
					"decode_error": "",
				}, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" + gzBody},
			},
		},
		{
			name: "pipelined requests in one record",
			parts: []part{
				{egress, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"},
				{ingress, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"},
			},
			want: []want{
				{KindRequest, egress, map[string]string{"method": "GET", "path": "/a"}, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindRequest, egress, map[string]string{"method": "GET", "path": "/b"}, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindRequest, egress, map[string]string{"method": "POST", "path": "/c", "body_bytes": "3"}, "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"},
				{KindResponse, ingress, map[string]string{"status": "200"}, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"},
				{KindResponse, ingress, map[string]string{"status": "404"}, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "201"}, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"},
			},
		},
		{
			name:  "request split byte by byte",
			parts: []part{{egress, "POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 7\r\n\r\na=1&b=2"}},
			split: 1,
			want: []want{
				{KindRequest, egress, map[string]string{"method": "POST", "path": "/form", "body_bytes": "7"},
					"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 7\r\n\r\na=1&b=2"},
			},
		},
		{
			name:  "server-side capture: requests are ingress",
			parts: []part{{ingress, getReq}, {egress, okResp}},
			split: 10,
			want: []want{
				{KindRequest, ingress, map[string]string{"method": "GET", "host": "example.com"}, getReq},
				{KindResponse, egress, map[string]string{"status": "200", "body_bytes": "5"}, okResp},
			},
		},
		{
			name: "response to HEAD has no body",
			parts: []part{
				{egress, "HEAD /file HTTP/1.1\r\nHost: h\r\n\r\n"},
				{ingress, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
				{egress, getReq},
				{ingress, okResp},
			},
			want: []want{
				{KindRequest, egress, map[string]string{"method": "HEAD"}, "HEAD /file HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "200", "body_bytes": "0", "header.Content-Length": "1234"}, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
				{KindRequest, egress, map[string]string{"method": "GET"}, getReq},
				{KindResponse, ingress, map[string]string{"status": "200", "body_bytes": "5"}, okResp},
			},
		},
		{
			name: "204 and 304 have no body",
			parts: []part{
				{egress, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\nGET /z HTTP/1.1\r\nHost: h\r\n\r\n"},
				{ingress, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n" + okResp},
			},
			want: []want{
				{KindRequest, egress, map[string]string{"method": "DELETE"}, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindRequest, egress, map[string]string{"path": "/y"}, "GET /y HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindRequest, egress, map[string]string{"path": "/z"}, "GET /z HTTP/1.1\r\nHost: h\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "204"}, "HTTP/1.1 204 No Content\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "304"}, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "200"}, okResp},
			},
		},
		{
			name: "100 Continue is a message of its own",
			parts: []part{
				{egress, "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"},
				{ingress, "HTTP/1.1 100 Continue\r\n\r\n"},
				{egress, "data"},
				{ingress, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
			},
			want: []want{
				{KindResponse, ingress, map[string]string{"status": "100"}, "HTTP/1.1 100 Continue\r\n\r\n"},
				{KindRequest, egress, map[string]string{"method": "PUT", "body_bytes": "4"}, "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"},
				{KindResponse, ingress, map[string]string{"status": "201"}, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
			},
		},
		{
			name:  "response until close is emitted by Flush",
			parts: []part{{egress, "GET / HTTP/1.0\r\n\r\n"}, {ingress, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"}, {ingress, "</html>"}},
			flush: true,
			want: []want{
				{KindRequest, egress, map[string]string{"proto": "HTTP/1.0"}, "GET / HTTP/1.0\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"proto": "HTTP/1.0", "status": "200", "body_bytes": "13", "incomplete": ""},
					"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>"},
			},
		},
		{
			name:  "partial body at Flush is incomplete",
			parts: []part{{egress, "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"}},
			flush: true,
			want: []want{
				{KindRequest, egress, map[string]string{"incomplete": "true", "body_bytes": "3", "wire_body_bytes": "3"},
					"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"},
			},
		},
		{
			name: "deflate, zlib-wrapped and raw",
			parts: []part{
				{egress, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"},
				{ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s", len(zlibbed("zlib!")), zlibbed("zlib!"))},
				{ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s", len(deflated("raw!")), deflated("raw!"))},
			},
			want: []want{
				{KindRequest, egress, nil, "GET /1 HTTP/1.1\r\n\r\n"},
				{KindRequest, egress, nil, "GET /2 HTTP/1.1\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"content_encoding": "deflate", "body_bytes": "5"},
					fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\nzlib!", len(zlibbed("zlib!")))},
				{KindResponse, ingress, map[string]string{"content_encoding": "deflate", "body_bytes": "4"},
					fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\nraw!", len(deflated("raw!")))},
			},
		},
		{
			name: "broken gzip keeps the raw body and says why",
			parts: []part{
				{egress, getReq},
				{ingress, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"},
				{egress, getReq},
				{ingress, "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nxyz"},
			},
			want: []want{
				{KindRequest, egress, nil, getReq},
				{KindResponse, ingress, map[string]string{"decode_error": "decoding gzip body: unexpected EOF", "content_encoding": "", "body_bytes": "4"},
					"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"},
				{KindRequest, egress, nil, getReq},
				{KindResponse, ingress, map[string]string{"decode_error": `unsupported content-encoding "br"`},
					"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nxyz"},
			},
			stats: Stats{HTTP1Messages: 4, DecodeErrors: 2},
		},
		{
			name:  "bare LF line ends",
			parts: []part{{egress, "GET /lf HTTP/1.1\nHost: lf\n\n"}, {ingress, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"}},
			split: 3,
			want: []want{
				{KindRequest, egress, map[string]string{"path": "/lf", "host": "lf"}, "GET /lf HTTP/1.1\nHost: lf\n\n"},
				{KindResponse, ingress, map[string]string{"status": "200", "body_bytes": "2"}, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
			},
		},
		{
			name:  "repeated headers repeat the field",
			parts: []part{{ingress, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n"}},
			want: []want{
				{KindResponse, ingress, map[string]string{"header.Set-Cookie": "a=1"}, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n"},
			},
		},
		{
			name: "header names change place and case between messages",
			parts: []part{
				{egress, "GET /1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\nGET /2 HTTP/1.1\r\naccept: a\r\nhost: i\r\n\r\n" +
					"GET /3 HTTP/1.1\r\nX-Id: 3\r\nHOST: j\r\n\r\n"},
				{ingress, "HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Length: 0\r\n\r\n" +
					"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-type: b\r\n\r\nx" +
					"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 0\r\nETag: e\r\n\r\n"},
			},
			want: []want{
				{KindRequest, egress, map[string]string{"host": "h", "header.Host": "h", "header.Accept": "*/*"},
					"GET /1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"},
				{KindRequest, egress, map[string]string{"host": "i", "header.Host": "i", "header.Accept": "a"},
					"GET /2 HTTP/1.1\r\naccept: a\r\nhost: i\r\n\r\n"},
				{KindRequest, egress, map[string]string{"host": "j", "header.Host": "j", "header.X-Id": "3", "header.Accept": ""},
					"GET /3 HTTP/1.1\r\nX-Id: 3\r\nHOST: j\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"header.Content-Type": "a", "header.Content-Length": "0"},
					"HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Length: 0\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"header.Content-Type": "b", "header.Content-Length": "1", "body_bytes": "1"},
					"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-type: b\r\n\r\nx"},
				{KindResponse, ingress, map[string]string{"header.Content-Length": "0", "header.Etag": "e", "header.Content-Type": ""},
					"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 0\r\nETag: e\r\n\r\n"},
			},
		},
		{
			name:  "unknown protocol passes through unchanged",
			parts: []part{{egress, "SSH-2.0-OpenSSH_9.6\r\n"}, {ingress, "\x00\x01\x02binary"}},
			want: []want{
				{"tls_data", egress, nil, "SSH-2.0-OpenSSH_9.6\r\n"},
				{"tls_data", ingress, nil, "\x00\x01\x02binary"},
			},
			stats: Stats{PassthroughBytes: 30},
		},
		{
			name:  "short first records are held, then passed through",
			parts: []part{{egress, "GE"}, {egress, "T_/ x"}},
			split: 1,
			want: []want{
				{"tls_data", egress, nil, "G"}, {"tls_data", egress, nil, "E"}, {"tls_data", egress, nil, "T"},
				{"tls_data", egress, nil, "_"}, {"tls_data", egress, nil, "/"}, {"tls_data", egress, nil, " "},
				{"tls_data", egress, nil, "x"},
			},
		},
		{
			name: "garbage is passed through, and a record starting a message resynchronises",
			parts: []part{
				{egress, getReq},
				{ingress, "HTTP/1.1 2xx broken\r\n\r\n"},
				{ingress, "more garbage"},
				{egress, getReq},
				{ingress, okResp},
			},
			want: []want{
				{KindRequest, egress, nil, getReq},
				{"tls_data", ingress, map[string]string{"protocol_error": "http/1: malformed start line"}, "HTTP/1.1 2xx broken\r\n\r\n"},
				{"tls_data", ingress, nil, "more garbage"},
				{KindRequest, egress, nil, getReq},
				{KindResponse, ingress, map[string]string{"status": "200"}, okResp},
			},
			stats: Stats{HTTP1Messages: 3, ProtocolErrors: 1, PassthroughBytes: 35},
		},
		{
			name: "bad chunk framing: the message so far, then the bytes passed through",
			parts: []part{
				{egress, getReq},
				{ingress, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nrest"},
			},
			want: []want{
				{KindRequest, egress, nil, getReq},
				{KindResponse, ingress, map[string]string{"incomplete": "true", "body_bytes": "3", "wire_body_bytes": "12"},
					"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nabc"},
				{"tls_data", ingress, map[string]string{"protocol_error": "http/1: malformed chunk framing"}, "zz\r\nrest"},
			},
			stats: Stats{HTTP1Messages: 2, ProtocolErrors: 1, PassthroughBytes: 8},
		},
		{
			name: "WebSocket upgrade: after 101 the connection passes through",
			parts: []part{
				{egress, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
				{ingress, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"},
				{egress, "\x81\x82abcd\x09\x0b"},
			},
			want: []want{
				{KindRequest, egress, nil, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
				{KindResponse, ingress, map[string]string{"status": "101"}, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"},
				{"tls_data", ingress, nil, "\x81\x02hi"},
				{"tls_data", egress, nil, "\x81\x82abcd\x09\x0b"},
			},
		},
		{
			name:  "oversize message is emitted truncated",
			opts:  Options{MaxBuffer: 1024},
			parts: []part{{ingress, bigHead + big + okResp}},
			split: 100,
			want: []want{
				{KindResponse, ingress, map[string]string{"truncated": "true", "wire_body_bytes": "4000", "body_bytes": fmt.Sprint(1024 - len(bigHead))},
					(bigHead + big)[:1024]},
				{KindResponse, ingress, map[string]string{"truncated": "", "body_bytes": "5"}, okResp},
			},
			stats: Stats{HTTP1Messages: 2, Truncated: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(tt.opts)
			var got collector
			feedParts(d, 7, tt.parts, tt.split, got.emit)
			if tt.flush {
				d.Flush(time.Now(), true, got.emit)
			}
			checkEvents(t, got.evs, tt.want)
			if tt.stats != (Stats{}) {
				st := d.Stats()
				st.Conns = 0
				if st != tt.stats {
					t.Errorf("stats = %+v, want %+v", st, tt.stats)
				}
			}
		})
	}
}

func checkEvents(t *testing.T, got []*sdk.Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, ev := range got {
			t.Logf("got:\n%s", render(ev))
		}
		t.Fatalf("got %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		ev := got[i]
		if ev.Kind != w.kind || ev.Conn.Direction != w.dir {
			t.Errorf("event %d: %s %s, want %s %s", i, ev.Kind, ev.Conn.Direction, w.kind, w.dir)
		}
		if ev.Module != "openssl" || ev.PID != 4242 || ev.TID != 4243 || ev.UID != 1000 || ev.Comm != "curl" ||
			ev.Route != sdk.RouteStream || !ev.Time.Equal(t0) || ev.Conn.ID != 7 {
			t.Errorf("event %d: metadata not copied: %+v", i, ev)
		}
		for k, v := range w.fields {
			gv, ok := ev.Field(k)
			if v == "" && ok {
				t.Errorf("event %d: field %s=%q, want none", i, k, gv)
			} else if v != "" && gv != v {
				t.Errorf("event %d: field %s=%q, want %q", i, k, gv, v)
			}
		}
		if string(ev.Payload) != w.payload {
			t.Errorf("event %d: payload\n%q\nwant\n%q", i, ev.Payload, w.payload)
		}
	}
}

func TestRepeatedHeaderFields(t *testing.T) {
	d := New(Options{})
	var got collector
	feedParts(d, 1, []part{{ingress, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n"}}, 0, got.emit)
	if len(got.evs) != 1 {
		t.Fatalf("got %d events", len(got.evs))
	}
	if v := fieldValues(got.evs[0], "header.Set-Cookie"); len(v) != 2 || v[0] != "a=1" || v[1] != "b=2" {
		t.Errorf("header.Set-Cookie = %q", v)
	}
}

// A 1 MiB body in 16 KiB records comes out byte for byte.
func TestLargeBody(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
		split   int
	}{
		{"content-length, 16 KiB records", false, 16 << 10},
		{"chunked, 16 KiB records", true, 16 << 10},
		{"content-length, odd records", false, 4093},
	}
	body := make([]byte, 1<<20)
	rand.Read(body)
	sum := sha256.Sum256(body)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msg []byte
			if tt.chunked {
				msg = []byte("POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(string(body), 10000, ""))
			} else {
				msg = fmt.Appendf(nil, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
			d := New(Options{})
			var got collector
			feedSplit(d, 1, egress, msg, tt.split, got.emit)
			if len(got.evs) != 1 {
				t.Fatalf("got %d events, want 1", len(got.evs))
			}
			ev := got.evs[0]
			i := bytes.Index(ev.Payload, []byte("\r\n\r\n"))
			if gotSum := sha256.Sum256(ev.Payload[i+4:]); gotSum != sum {
				t.Errorf("body sha256 %x, want %x (len %d)", gotSum, sum, len(ev.Payload)-i-4)
			}
			if v, _ := ev.Field("wire_body_bytes"); v != fmt.Sprint(len(msg)-i-4) {
				t.Errorf("wire_body_bytes = %s, want %d", v, len(msg)-i-4)
			}
		})
	}
}

func TestGoldenHTTP1(t *testing.T) {
	d := New(Options{})
	var got collector
	body := `{"ok":true,"items":[1,2,3]}` + "\n"
	feedParts(d, 1, []part{
		{egress, "GET /api/items?limit=3 HTTP/1.1\r\nHost: api.example.com\r\nAccept-Encoding: gzip\r\n\r\n"},
		{ingress, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nVary: Accept-Encoding\r\n\r\n" +
			chunked(gzipped(body), 16, "")},
	}, 5, got.emit)
	if len(got.evs) != 2 {
		t.Fatalf("got %d events", len(got.evs))
	}
	checkGolden(t, "http1_request", render(got.evs[0]))
	checkGolden(t, "http1_response_gzip_chunked", render(got.evs[1]))
}
