package stream

import (
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestPassthroughUnjoinable(t *testing.T) {
	tests := []struct {
		name string
		ev   *sdk.Event
	}{
		{"connection id 0", rec(0, egress, []byte(getReq))},
		{"unknown direction", rec(3, sdk.DirectionUnknown, []byte(getReq))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Options{})
			var got []*sdk.Event
			d.Feed(tt.ev, func(ev *sdk.Event) { got = append(got, ev) })
			if len(got) != 1 || got[0] != tt.ev {
				t.Fatalf("got %d events, want the record itself", len(got))
			}
			if st := d.Stats(); st.PassthroughBytes != uint64(len(getReq)) || st.Conns != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestEviction(t *testing.T) {
	d := New(Options{MaxConns: 2})
	var got collector
	// Three connections, each with a request whose body is still coming.
	for id := uint64(1); id <= 3; id++ {
		feedSplit(d, id, egress, []byte("POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"), 0, got.emit)
	}
	if len(got.evs) != 1 {
		t.Fatalf("got %d events, want the evicted connection's message", len(got.evs))
	}
	ev := got.evs[0]
	if ev.Conn.ID != 1 || ev.Kind != KindRequest {
		t.Errorf("evicted conn %d kind %s, want conn 1 http_request", ev.Conn.ID, ev.Kind)
	}
	if v, _ := ev.Field("incomplete"); v != "true" {
		t.Errorf("incomplete = %q, want true", v)
	}
	// Touching conn 2 makes conn 3 the least recently used.
	feedSplit(d, 2, egress, []byte("defghij"), 0, got.emit)
	feedSplit(d, 4, egress, []byte(getReq), 0, got.emit)
	if len(got.evs) != 4 {
		t.Fatalf("got %d events, want 4", len(got.evs))
	}
	if got.evs[1].Conn.ID != 2 || string(got.evs[1].Payload[len(got.evs[1].Payload)-10:]) != "abcdefghij" {
		t.Errorf("event 1: conn %d payload %q", got.evs[1].Conn.ID, got.evs[1].Payload)
	}
	if got.evs[2].Conn.ID != 3 {
		t.Errorf("evicted conn %d, want 3", got.evs[2].Conn.ID)
	}
	if st := d.Stats(); st.Evicted != 2 || st.Conns != 2 {
		t.Errorf("stats = %+v, want 2 evicted, 2 conns", st)
	}
}

func TestIdleFlush(t *testing.T) {
	now := t0
	d := New(Options{IdleFlush: time.Second, Now: func() time.Time { return now }})
	var got collector
	// conn 1: a response until close; conn 2: a held, undecided record.
	feedParts(d, 1, []part{{egress, "GET / HTTP/1.1\r\n\r\n"}, {ingress, "HTTP/1.1 200 OK\r\n\r\nstreamed"}}, 0, got.emit)
	now = now.Add(1500 * time.Millisecond)
	feedSplit(d, 2, egress, []byte("GET /x"), 0, got.emit)
	if len(got.evs) != 1 {
		t.Fatalf("got %d events before flush, want 1", len(got.evs))
	}
	d.Flush(now, false, got.emit)
	if len(got.evs) != 2 || got.evs[1].Conn.ID != 1 || string(got.evs[1].Payload) != "HTTP/1.1 200 OK\r\n\r\nstreamed" {
		t.Fatalf("after the first flush: %d events", len(got.evs))
	}
	if st := d.Stats(); st.Conns != 1 {
		t.Errorf("conns = %d, want 1", st.Conns)
	}
	now = now.Add(1500 * time.Millisecond)
	d.Flush(now, false, got.emit)
	if len(got.evs) != 3 || got.evs[2].Kind != "tls_data" || string(got.evs[2].Payload) != "GET /x" {
		t.Fatalf("after the second flush: %d events", len(got.evs))
	}
	if st := d.Stats(); st.Conns != 0 {
		t.Errorf("conns = %d, want 0", st.Conns)
	}
	// After the flush, the connection starts over at a message.
	feedParts(d, 1, []part{{egress, getReq}}, 0, got.emit)
	if len(got.evs) != 4 || got.evs[3].Kind != KindRequest {
		t.Errorf("a request after flush was not decoded")
	}
}

func TestCanonicalName(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"lower", "content-type", "Content-Type"},
		{"upper", "X-FORWARDED-FOR", "X-Forwarded-For"},
		{"canonical", "Host", "Host"},
		{"not a token", "bad name", "bad name"},
		{"digits", "x-1a", "X-1a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canonicalName(tt.in); got != tt.want {
				t.Errorf("canonicalName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want class
	}{
		{"request", "GET / HTTP/1.1\r\n", clsRequest},
		{"request bare LF", "OPTIONS * HTTP/1.0\n", clsRequest},
		{"request prefix", "POST /upload HTT", clsNeedMore},
		{"method prefix", "DELE", clsNeedMore},
		{"HTTP/2 request line", "GET / HTTP/2.0\r\n", clsUnknown},
		{"response", "HTTP/1.1 200 OK", clsResponse},
		{"response prefix", "HTTP/1", clsNeedMore},
		{"response bad version", "HTTP/1.2 200", clsUnknown},
		{"preface", h2Preface, clsPreface},
		{"preface prefix", "PRI * HTTP/2.0\r\n", clsNeedMore},
		{"settings", "\x00\x00\x06\x04\x00\x00\x00\x00\x00", clsSettings},
		{"settings ack is not first", "\x00\x00\x00\x04\x01\x00\x00\x00\x00", clsUnknown},
		{"tls record", "\x16\x03\x01\x02\x00", clsUnknown},
		{"text line", "hello world\n", clsUnknown},
		{"text that may still be a request line", "hello world", clsNeedMore},
		{"long method", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ", clsUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify([]byte(tt.in)); got != tt.want {
				t.Errorf("classify(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
