package stream

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// feedCut feeds data as the kernel sends calls of call bytes cut to snap:
// each call one record of its first snap bytes, marked with its length.
func feedCut(d *Decoder, id uint64, dir sdk.Direction, data string, call, snap int, emit func(*sdk.Event)) {
	for len(data) > 0 {
		n := min(call, len(data))
		ev := rec(id, dir, []byte(data[:min(n, snap)]))
		if n > snap {
			ev.AddField(tlsrecord.FieldTruncated, "true")
			ev.AddField(tlsrecord.FieldPayloadBytes, strconv.Itoa(n))
		}
		d.Feed(ev, emit)
		data = data[n:]
	}
}

func field(ev *sdk.Event, key string) string {
	v, _ := ev.Field(key)
	return v
}

func TestFieldPayloadBytesIsTLSRecords(t *testing.T) {
	if fieldPayloadBytes != tlsrecord.FieldPayloadBytes {
		t.Errorf("the stream decoder reads %q, tlsrecord sets %q", fieldPayloadBytes, tlsrecord.FieldPayloadBytes)
	}
}

// TestHTTP1Cut: responses of 64 KiB written in 16 KiB calls cut to 4 KiB
// are each decoded, marked truncated with their real length, and the
// requests and responses after them decode whole.
func TestHTTP1Cut(t *testing.T) {
	body := strings.Repeat("abcdefgh", 8192) // 64 KiB
	head := "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 65536\r\n\r\n"
	small := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	for _, tc := range []struct {
		name       string
		call, snap int
	}{
		{"16k calls cut to 4k", 16384, 4096},
		{"head alone kept", 16384, len(head) + 1},
		{"one call cut to 100", 1 << 20, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{})
			var c collector
			for i := 0; i < 3; i++ {
				feedSplit(d, 1, ingress, []byte("GET /64k HTTP/1.1\r\nHost: x\r\n\r\n"), 0, c.emit)
				feedCut(d, 1, egress, head+body, tc.call, tc.snap, c.emit)
			}
			feedSplit(d, 1, ingress, []byte("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"), 0, c.emit)
			feedSplit(d, 1, egress, []byte(small), 0, c.emit)
			if len(c.evs) != 8 {
				for _, ev := range c.evs {
					t.Log(render(ev))
				}
				t.Fatalf("%d events, want 8", len(c.evs))
			}
			for i, ev := range c.evs[:6] {
				if i%2 == 0 {
					if ev.Kind != KindRequest || field(ev, "path") != "/64k" {
						t.Errorf("event %d: %s", i, render(ev))
					}
					continue
				}
				if ev.Kind != KindResponse || field(ev, "truncated") != "true" || field(ev, "wire_body_bytes") != "65536" ||
					field(ev, "payload_bytes") != strconv.Itoa(len(head)+65536) || field(ev, "incomplete") != "" {
					t.Errorf("event %d: %s", i, render(ev))
				}
				if !strings.HasPrefix(string(ev.Payload), head+"a") || len(ev.Payload) >= len(head)+65536 ||
					field(ev, "body_bytes") != strconv.Itoa(len(ev.Payload)-len(head)) {
					t.Errorf("event %d: payload of %d bytes, body_bytes %s", i, len(ev.Payload), field(ev, "body_bytes"))
				}
			}
			if last := c.evs[7]; last.Kind != KindResponse || string(last.Payload) != small || field(last, "truncated") != "" {
				t.Errorf("the response after: %s", render(last))
			}
			if st := d.Stats(); st.Truncated != 3 || st.Lost != 0 || st.ProtocolErrors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestHTTP1CutLosesFraming: bytes not captured where the framing is (a
// chunk-size line, the start of the next message) end the message
// incomplete; decoding resumes at a record that starts a message.
func TestHTTP1CutLosesFraming(t *testing.T) {
	d := New(Options{})
	var c collector
	resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(strings.Repeat("x", 3000), 1000, "")
	feedSplit(d, 1, ingress, []byte("GET /a HTTP/1.1\r\n\r\n"), 0, c.emit)
	feedCut(d, 1, egress, resp, len(resp), 100, c.emit)
	// The rest of a cut record holds a whole response: lost.
	feedSplit(d, 1, ingress, []byte("GET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"), 0, c.emit)
	two := "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	feedCut(d, 1, egress, two, len(two), 20, c.emit)
	feedSplit(d, 1, ingress, []byte("GET /d HTTP/1.1\r\n\r\n"), 0, c.emit)
	feedSplit(d, 1, egress, []byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"), 0, c.emit)
	var kinds []string
	for _, ev := range c.evs {
		kinds = append(kinds, ev.Kind+" "+field(ev, "path")+field(ev, "status")+" "+field(ev, "incomplete"))
	}
	want := []string{
		"http_request /a ", "http_response 200 true",
		"http_request /b ", "http_request /c ", "tls_data  ",
		"http_request /d ", "http_response 200 ",
	}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		for _, ev := range c.evs {
			t.Log(render(ev))
		}
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
	}
	if field(c.evs[1], "truncated") != "true" {
		t.Errorf("the cut chunked response: %s", render(c.evs[1]))
	}
	if st := d.Stats(); st.Lost != 2 || st.ProtocolErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestHTTP2Cut: a response whose DATA frames lose bytes in their middle
// is decoded truncated with its real length, and the connection goes on;
// a hole hiding a frame header stops the direction, its open stream
// emitted incomplete.
func TestHTTP2Cut(t *testing.T) {
	cli, srv := newPeer(true), newPeer(false)
	d := New(Options{})
	var c collector
	body := strings.Repeat("0123456789abcdef", 2048) // 32 KiB
	cli.fr.WriteSettings()
	cli.headers(1, true, ":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/big")
	feedSplit(d, 1, egress, []byte(cli.take()), 0, c.emit)
	srv.fr.WriteSettings()
	srv.headers(1, false, ":status", "200")
	feedSplit(d, 1, ingress, []byte(srv.take()), 0, c.emit)
	// Two DATA frames of 16 KiB, the first padded, each written in one
	// call cut to 1000 bytes.
	srv.fr.WriteDataPadded(1, false, []byte(body[:16000]), make([]byte, 100))
	f1 := srv.take()
	srv.fr.WriteData(1, true, []byte(body[16000:]))
	f2 := srv.take()
	feedCut(d, 1, ingress, f1, len(f1), 1000, c.emit)
	feedCut(d, 1, ingress, f2, len(f2), 1000, c.emit)
	// Stream 3 whole, then stream 5 whose DATA is cut after the frame:
	// the next frame's header is in the hole.
	cli.headers(3, true, ":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/small")
	cli.headers(5, true, ":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/lost")
	feedSplit(d, 1, egress, []byte(cli.take()), 0, c.emit)
	srv.headers(3, false, ":status", "200")
	srv.fr.WriteData(3, true, []byte("hi"))
	srv.headers(5, false, ":status", "404")
	srv.fr.WriteData(5, false, []byte("nope"))
	srv.fr.WriteData(5, true, []byte("more"))
	all := srv.take()
	cut := strings.Index(all, "nope") + 4
	feedCut(d, 1, ingress, all, len(all), cut, c.emit)
	feedSplit(d, 1, ingress, []byte("after"), 0, c.emit)

	var got []string
	for _, ev := range c.evs {
		got = append(got, ev.Kind+" "+field(ev, "path")+field(ev, "status")+" "+field(ev, "truncated")+" "+field(ev, "incomplete"))
	}
	want := []string{
		"http_request /big  ", "http_response 200 true ",
		"http_request /small  ", "http_request /lost  ",
		"http_response 200  ", "http_response 404 true true", "tls_data   ",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		for _, ev := range c.evs {
			t.Log(render(ev))
		}
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	big := c.evs[1]
	if field(big, "wire_body_bytes") != "32768" || !strings.HasSuffix(string(big.Payload), "\n\n"+body[:1000-9-1]+body[16000:16000+1000-9]) {
		t.Errorf("the cut response: %s", render(big))
	}
	if want := strconv.Itoa(len(":status: 200\n\n") + 32768); field(big, "payload_bytes") != want {
		t.Errorf("payload_bytes %s, want %s", field(big, "payload_bytes"), want)
	}
	if st := d.Stats(); st.Lost != 1 || st.ProtocolErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}
