package stream

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2peer writes the frames one endpoint sends, with real x/net/http2 code.
type h2peer struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newPeer(client bool) *h2peer {
	p := &h2peer{}
	if client {
		p.buf.WriteString(http2.ClientPreface)
	}
	p.fr = http2.NewFramer(&p.buf, nil)
	p.enc = hpack.NewEncoder(&p.hb)
	return p
}

// block HPACK-encodes name, value pairs with the peer's dynamic table.
func (p *h2peer) block(kv ...string) []byte {
	p.hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(p.hb.Bytes())
}

func (p *h2peer) headers(sid uint32, end bool, kv ...string) {
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: p.block(kv...), EndStream: end, EndHeaders: true})
}

// take returns what the peer wrote since the last take.
func (p *h2peer) take() string {
	s := p.buf.String()
	p.buf.Reset()
	return s
}

// feedSizes feeds data as records whose sizes cycle through sizes.
func feedSizes(d *Decoder, id uint64, dir sdk.Direction, data []byte, sizes []int, emit func(*sdk.Event)) {
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		feedSplit(d, id, dir, data[:n], 0, emit)
		data = data[n:]
	}
}

var getHello = []string{":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", "/hello", "user-agent", "test/1.0"}

// helloConv is GET /hello answered with "hi": returns the client's and the
// server's bytes in the order they are sent.
func helloConv() []part {
	c, s := newPeer(true), newPeer(false)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	c.fr.WriteWindowUpdate(0, 1<<20)
	c.headers(1, true, getHello...)
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	s.fr.WriteSettingsAck()
	s.headers(1, false, ":status", "200", "content-type", "text/plain")
	s.fr.WriteData(1, true, []byte("hi"))
	first, second := c.take(), s.take()
	c.fr.WriteSettingsAck()
	c.fr.WritePing(false, [8]byte{1})
	return []part{{egress, first}, {ingress, second}, {egress, c.take()}}
}

const helloReqPayload = ":method: GET\n:scheme: https\n:authority: example.com\n:path: /hello\nuser-agent: test/1.0\n\n"

func TestHTTP2(t *testing.T) {
	hello := helloConv()
	helloWant := []want{
		{KindRequest, egress, map[string]string{
			"proto": "HTTP/2", "method": "GET", "path": "/hello", "authority": "example.com", "stream_id": "1",
			"header.User-Agent": "test/1.0", "body_bytes": "0", "status": "",
		}, helloReqPayload},
		{KindResponse, ingress, map[string]string{
			"proto": "HTTP/2", "status": "200", "stream_id": "1", "header.Content-Type": "text/plain",
			"body_bytes": "2", "wire_body_bytes": "2", "method": "",
		}, ":status: 200\ncontent-type: text/plain\n\nhi"},
	}

	tests := []struct {
		name  string
		parts func() []part
		sizes []int
		want  []want
		stats Stats
	}{
		{
			name:  "GET /hello in odd chunk sizes",
			parts: func() []part { return hello },
			sizes: []int{1, 3, 7, 13, 5, 2},
			want:  helloWant,
			stats: Stats{HTTP2Messages: 2},
		},
		{
			name:  "GET /hello in whole records",
			parts: func() []part { return hello },
			sizes: []int{1 << 20},
			want:  helloWant,
		},
		{
			name: "server-side capture, server SETTINGS sent before the preface is read",
			parts: func() []part {
				c, s := newPeer(true), newPeer(false)
				s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
				first := s.take()
				c.fr.WriteSettings()
				c.headers(1, true, getHello...)
				second := c.take()
				s.headers(1, false, ":status", "200", "content-type", "text/plain")
				s.fr.WriteData(1, true, []byte("hi"))
				return []part{{egress, first}, {ingress, second}, {egress, s.take()}}
			},
			sizes: []int{5, 1},
			want: []want{
				{KindRequest, ingress, map[string]string{"method": "GET", "path": "/hello"}, helloReqPayload},
				{KindResponse, egress, map[string]string{"status": "200", "body_bytes": "2"}, ":status: 200\ncontent-type: text/plain\n\nhi"},
			},
		},
		{
			name: "POST with body, CONTINUATION, padding, gzip, dynamic table reuse",
			parts: func() []part {
				c, s := newPeer(true), newPeer(false)
				c.fr.WriteSettings()
				c.headers(1, true, getHello...)
				s.fr.WriteSettings()
				s.headers(1, true, ":status", "204")
				// Stream 3 reuses table entries stream 1 added, in both directions.
				blk := c.block(":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/submit",
					"user-agent", "test/1.0", "content-type", "application/x-www-form-urlencoded")
				c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:4], PadLength: 3,
					Priority: http2.PriorityParam{StreamDep: 1, Weight: 15}})
				c.fr.WriteContinuation(3, false, blk[4:9])
				c.fr.WriteContinuation(3, true, blk[9:])
				c.fr.WriteData(3, false, []byte("a=1"))
				c.fr.WriteDataPadded(3, true, []byte("&b=2"), []byte{0, 0, 0, 0, 0})
				gz := gzipped("compressed hello\n")
				s.headers(3, false, ":status", "200", "content-encoding", "gzip", "content-type", "text/plain")
				s.fr.WriteDataPadded(3, false, []byte(gz[:10]), []byte{0, 0})
				s.fr.WriteData(3, true, []byte(gz[10:]))
				return []part{{egress, c.take()}, {ingress, s.take()}}
			},
			sizes: []int{11, 4},
			want: []want{
				{KindRequest, egress, map[string]string{"method": "GET", "stream_id": "1"}, helloReqPayload},
				{KindRequest, egress, map[string]string{"method": "POST", "path": "/submit", "stream_id": "3",
					"header.Content-Type": "application/x-www-form-urlencoded", "body_bytes": "7", "wire_body_bytes": "7"},
					":method: POST\n:scheme: https\n:authority: example.com\n:path: /submit\nuser-agent: test/1.0\n" +
						"content-type: application/x-www-form-urlencoded\n\na=1&b=2"},
				{KindResponse, ingress, map[string]string{"status": "204", "stream_id": "1"}, ":status: 204\n\n"},
				{KindResponse, ingress, map[string]string{"status": "200", "stream_id": "3", "content_encoding": "gzip",
					"body_bytes": "17", "wire_body_bytes": strconv.Itoa(len(gzipped("compressed hello\n")))},
					":status: 200\ncontent-encoding: gzip\ncontent-type: text/plain\n\ncompressed hello\n"},
			},
		},
		{
			name: "interleaved streams, informational response and trailers",
			parts: func() []part {
				c, s := newPeer(true), newPeer(false)
				c.fr.WriteSettings()
				c.headers(1, true, ":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/one")
				c.headers(3, true, ":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/two")
				s.fr.WriteSettings()
				s.headers(3, false, ":status", "103", "link", "</s.css>; rel=preload")
				s.headers(3, false, ":status", "200")
				s.headers(1, false, ":status", "200")
				s.fr.WriteData(1, false, []byte("one"))
				s.fr.WriteData(3, false, []byte("two"))
				s.headers(3, true, "grpc-status", "0")
				s.fr.WriteData(1, true, nil)
				return []part{{egress, c.take()}, {ingress, s.take()}}
			},
			sizes: []int{1 << 20},
			want: []want{
				{KindRequest, egress, map[string]string{"path": "/one", "stream_id": "1"}, ":method: GET\n:scheme: https\n:authority: a\n:path: /one\n\n"},
				{KindRequest, egress, map[string]string{"path": "/two", "stream_id": "3"}, ":method: GET\n:scheme: https\n:authority: a\n:path: /two\n\n"},
				{KindResponse, ingress, map[string]string{"status": "103", "stream_id": "3", "header.Link": "</s.css>; rel=preload"}, ":status: 103\nlink: </s.css>; rel=preload\n\n"},
				{KindResponse, ingress, map[string]string{"status": "200", "stream_id": "3", "trailer.Grpc-Status": "0"}, ":status: 200\n\ntwo"},
				{KindResponse, ingress, map[string]string{"status": "200", "stream_id": "1"}, ":status: 200\n\none"},
			},
		},
		{
			name: "RST_STREAM emits what the stream holds",
			parts: func() []part {
				c, s := newPeer(true), newPeer(false)
				c.fr.WriteSettings()
				c.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/up")
				c.fr.WriteData(1, false, []byte("part"))
				s.fr.WriteSettings()
				s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
				return []part{{egress, c.take()}, {ingress, s.take()}}
			},
			sizes: []int{1 << 20},
			want: []want{
				{KindRequest, egress, map[string]string{"path": "/up", "incomplete": "true", "reset": "CANCEL", "body_bytes": "4"},
					":method: POST\n:scheme: https\n:authority: a\n:path: /up\n\npart"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Options{})
			var got collector
			for _, p := range tt.parts() {
				feedSizes(d, 7, p.dir, []byte(p.data), tt.sizes, got.emit)
			}
			checkEvents(t, got.evs, tt.want)
			st := d.Stats()
			if st.PassthroughBytes != 0 || st.ProtocolErrors != 0 {
				t.Errorf("stats = %+v, want no passthrough", st)
			}
			if tt.stats.HTTP2Messages != 0 && st.HTTP2Messages != tt.stats.HTTP2Messages {
				t.Errorf("HTTP2Messages = %d, want %d", st.HTTP2Messages, tt.stats.HTTP2Messages)
			}
		})
	}
}

// An idle HTTP/2 connection keeps its HPACK state: a stream after Flush
// decodes with table entries from before it.
func TestHTTP2IdleFlushKeepsHPACK(t *testing.T) {
	now := t0
	d := New(Options{Now: func() time.Time { return now }})
	var got collector
	c, s := newPeer(true), newPeer(false)
	c.fr.WriteSettings()
	c.headers(1, true, getHello...)
	s.fr.WriteSettings()
	s.headers(1, false, ":status", "200", "x-custom", "kept")
	feedSplit(d, 1, egress, []byte(c.take()), 0, got.emit)
	feedSplit(d, 1, ingress, []byte(s.take()), 0, got.emit)
	if len(got.evs) != 1 {
		t.Fatalf("before flush: %d events, want 1", len(got.evs))
	}
	now = now.Add(3 * time.Second)
	d.Flush(now, false, got.emit)
	if len(got.evs) != 2 {
		t.Fatalf("after flush: %d events, want 2", len(got.evs))
	}
	if v, _ := got.evs[1].Field("incomplete"); v != "true" {
		t.Errorf("flushed response: incomplete=%q, want true", v)
	}
	c.headers(3, true, getHello...)
	s.headers(3, true, ":status", "200", "x-custom", "kept")
	feedSplit(d, 1, egress, []byte(c.take()), 0, got.emit)
	feedSplit(d, 1, ingress, []byte(s.take()), 0, got.emit)
	if len(got.evs) != 4 {
		t.Fatalf("after wake-up: %d events, want 4", len(got.evs))
	}
	if p := string(got.evs[2].Payload); p != helloReqPayload {
		t.Errorf("request after idle: %q", p)
	}
	if v, _ := got.evs[3].Field("header.X-Custom"); v != "kept" {
		t.Errorf("response after idle: header.X-Custom=%q", v)
	}
}

func TestGoldenHTTP2(t *testing.T) {
	d := New(Options{})
	var got collector
	for _, p := range helloConv() {
		feedSizes(d, 1, p.dir, []byte(p.data), []int{3, 17}, got.emit)
	}
	if len(got.evs) != 2 {
		t.Fatalf("got %d events", len(got.evs))
	}
	checkGolden(t, "http2_request", render(got.evs[0]))
	checkGolden(t, "http2_response", render(got.evs[1]))
}

func TestHTTP2Bounds(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		conv  func() []part
		check func(t *testing.T, evs []*sdk.Event, st Stats)
	}{
		{
			name: "body over MaxBuffer is emitted truncated",
			opts: Options{MaxBuffer: 40 << 10},
			conv: func() []part {
				c, s := newPeer(true), newPeer(false)
				c.fr.WriteSettings()
				c.headers(1, true, getHello...)
				s.fr.WriteSettings()
				s.headers(1, false, ":status", "200")
				chunk := bytes.Repeat([]byte("x"), 16<<10)
				for i := 0; i < 5; i++ {
					s.fr.WriteData(1, i == 4, chunk)
				}
				return []part{{egress, c.take()}, {ingress, s.take()}}
			},
			check: func(t *testing.T, evs []*sdk.Event, st Stats) {
				if len(evs) != 2 {
					t.Fatalf("got %d events", len(evs))
				}
				r := evs[1]
				for k, v := range map[string]string{"truncated": "true", "body_bytes": "40960", "wire_body_bytes": "81920"} {
					if got, _ := r.Field(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if st.Truncated != 1 {
					t.Errorf("Truncated = %d, want 1", st.Truncated)
				}
			},
		},
		{
			name: "broken HPACK passes the direction through",
			conv: func() []part {
				c := newPeer(true)
				c.fr.WriteSettings()
				c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, EndStream: true, EndHeaders: true})
				first := c.take()
				c.headers(3, true, getHello...)
				return []part{{egress, first}, {egress, c.take()}}
			},
			check: func(t *testing.T, evs []*sdk.Event, st Stats) {
				if len(evs) != 2 {
					t.Fatalf("got %d events", len(evs))
				}
				if v, _ := evs[0].Field("protocol_error"); !strings.HasPrefix(v, "http/2: ") || evs[0].Kind != "tls_data" {
					t.Errorf("first event: kind %s, protocol_error=%q", evs[0].Kind, v)
				}
				if evs[1].Kind != "tls_data" || len(evs[1].Fields) != 0 {
					t.Errorf("second event: kind %s fields %v, want the record unchanged", evs[1].Kind, evs[1].Fields)
				}
				if st.ProtocolErrors != 1 {
					t.Errorf("ProtocolErrors = %d, want 1", st.ProtocolErrors)
				}
			},
		},
		{
			name: "open streams are bounded",
			conv: func() []part {
				c := newPeer(true)
				c.fr.WriteSettings()
				for sid := uint32(1); sid < 2*(maxStreams+10); sid += 2 {
					c.headers(sid, false, getHello...)
				}
				return []part{{egress, c.take()}}
			},
			check: func(t *testing.T, evs []*sdk.Event, st Stats) {
				if len(evs) != 10 {
					t.Fatalf("got %d events, want the 10 oldest streams", len(evs))
				}
				if v, _ := evs[0].Field("stream_id"); v != "1" {
					t.Errorf("first evicted stream %s, want 1", v)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(tt.opts)
			var got collector
			for _, p := range tt.conv() {
				feedSplit(d, 1, p.dir, []byte(p.data), 0, got.emit)
			}
			tt.check(t, got.evs, d.Stats())
		})
	}
}
