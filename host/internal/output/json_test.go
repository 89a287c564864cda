package output

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

// appendJSON is a fresh jsonEncoder's append: nothing kept.
func appendJSON(dst []byte, ev *sdk.Event) []byte {
	var e jsonEncoder
	return e.append(dst, ev, nil)
}

// httpEvents are a request and a response as the openssl module reports
// them for nginx serving a 1 KiB file over TLS: the workload the JSON
// encoder is tuned for.
func httpEvents() []sdk.Event {
	conn := sdk.Connection{
		ID:        42,
		Local:     netip.MustParseAddrPort("127.0.0.1:443"),
		Remote:    netip.MustParseAddrPort("127.0.0.1:53124"),
		Direction: sdk.DirectionIngress,
	}
	lib := sdk.Field{Key: "lib", Value: "/usr/lib/x86_64-linux-gnu/libssl.so.3"}
	req := "GET /files/1k.bin HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
	// A base64-like body: plain ASCII, no escapes.
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	body := strings.Repeat(b64, 1024/len(b64))
	resp := "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0 (Ubuntu)\r\nDate: Wed, 25 Nov 2026 21:10:00 GMT\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n" +
		"Last-Modified: Wed, 25 Nov 2026 20:00:00 GMT\r\nConnection: keep-alive\r\n" +
		"ETag: \"6765a3c0-400\"\r\nAccept-Ranges: bytes\r\n\r\n" + body
	out := conn
	out.Direction = sdk.DirectionEgress
	return []sdk.Event{
		{
			Time: t0.Add(1234 * time.Microsecond), Module: "openssl", Kind: "http_request", PID: 2718, TID: 2718, UID: 33, Comm: "nginx",
			Payload: []byte(req), Conn: conn,
			Fields: []sdk.Field{
				{Key: "fd", Value: "12"}, lib, {Key: "method", Value: "GET"}, {Key: "path", Value: "/files/1k.bin"},
				{Key: "proto", Value: "HTTP/1.1"}, {Key: "header.Host", Value: "localhost"},
				{Key: "header.User-Agent", Value: "curl/8.5.0"}, {Key: "header.Accept", Value: "*/*"},
				{Key: "tls.version", Value: "TLSv1.3"}, {Key: "tls.cipher", Value: "TLS_AES_256_GCM_SHA384"},
			},
		},
		{
			Time: t0.Add(1391 * time.Microsecond), Module: "openssl", Kind: "http_response", PID: 2718, TID: 2718, UID: 33, Comm: "nginx",
			Payload: []byte(resp), Conn: out,
			Fields: []sdk.Field{
				{Key: "fd", Value: "12"}, lib, {Key: "proto", Value: "HTTP/1.1"}, {Key: "status", Value: "200"},
				{Key: "reason", Value: "OK"}, {Key: "header.Server", Value: "nginx/1.24.0 (Ubuntu)"},
				{Key: "header.Date", Value: "Wed, 25 Nov 2026 21:10:00 GMT"},
				{Key: "header.Content-Type", Value: "application/octet-stream"},
				{Key: "header.Content-Length", Value: "1024"},
				{Key: "header.Last-Modified", Value: "Wed, 25 Nov 2026 20:00:00 GMT"},
				{Key: "header.Connection", Value: "keep-alive"}, {Key: "header.ETag", Value: `"6765a3c0-400"`},
				{Key: "header.Accept-Ranges", Value: "bytes"},
			},
		},
	}
}

// BenchmarkJSONHTTP encodes the request and the response of httpEvents;
// MB/s counts the JSON written.
func BenchmarkJSONHTTP(b *testing.B) {
	evs := httpEvents()
	var buf []byte
	var enc jsonEncoder
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n = 0
		for i := range evs {
			buf = enc.append(buf[:0], &evs[i], nil)
			n += len(buf)
		}
	}
	b.SetBytes(int64(n))
}

// TestJSONSameAsReference checks appendJSON byte for byte against
// refAppendJSON, the encoder before it was made fast, on the golden and
// benchmark events and on random ones.
func TestJSONSameAsReference(t *testing.T) {
	evs := append(testEvents(), httpEvents()...)
	rnd := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		evs = append(evs, randomEvent(rnd))
	}
	for i := range evs {
		checkSameAsReference(t, &evs[i])
	}
}

// FuzzJSONSameAsReference is TestJSONSameAsReference with events made of
// fuzzed strings and times. fields holds keys and values separated by
// '\x1e'.
func FuzzJSONSameAsReference(f *testing.F) {
	f.Add("bash", "command", "bash", []byte("ls -la\n"), "k\x1ev", int64(1795900000), int64(123456789), int32(0), uint64(7), uint8(0))
	f.Add("m\xff", "k\u2028", "c\x00\"\\", []byte("\x16\x03\x01\x00\xf4"), "\u2029\x1e\xed\xa0\x80\x1eodd", int64(-62135596801), int64(0), int32(3600), uint64(0), uint8(0xff))
	f.Add("", "", "", []byte(strings.Repeat("abcdefgh", 20)+"\r\n\xe2\x80\xa8\xf0\x9f\x98\x80"), "", int64(253402300800), int64(100), int32(-19800), uint64(1), uint8(5))
	f.Fuzz(func(t *testing.T, module, kind, comm string, payload []byte, fields string, sec, nsec int64, zone int32, id uint64, conn uint8) {
		ev := sdk.Event{
			Time:   time.Unix(sec, nsec).In(time.FixedZone("z", int(zone))),
			Module: module, Kind: kind, Comm: comm, Payload: payload,
			PID: uint32(id), TID: uint32(id >> 32), UID: uint32(id >> 16),
			Conn: randomConn(conn, id),
		}
		if fields != "" {
			kv := strings.Split(fields, "\x1e")
			for i := 0; i < len(kv); i += 2 {
				f := sdk.Field{Key: kv[i]}
				if i+1 < len(kv) {
					f.Value = kv[i+1]
				}
				ev.Fields = append(ev.Fields, f)
			}
		}
		checkSameAsReference(t, &ev)
	})
}

// sharedEncoder writes every event checkSameAsReference sees, so that its
// kept parts are checked too.
var sharedEncoder jsonEncoder

// checkSameAsReference compares appendJSON with refAppendJSON on ev, also
// appending to a buffer that already holds something, and with an encoder
// that wrote other events before.
func checkSameAsReference(t *testing.T, ev *sdk.Event) {
	t.Helper()
	want := refAppendJSON(nil, ev)
	if got := appendJSON(nil, ev); !bytes.Equal(got, want) {
		t.Fatalf("appendJSON(%#v):\n got %q\nwant %q", ev, got, want)
	}
	for range 2 { // a miss or a hit, then a hit
		if got := sharedEncoder.append(nil, ev, nil); !bytes.Equal(got, want) {
			t.Fatalf("jsonEncoder.append(%#v):\n got %q\nwant %q", ev, got, want)
		}
	}
	prefix := []byte("previous line\n")
	buf := make([]byte, len(prefix), len(prefix)+len(want)/2)
	copy(buf, prefix)
	if got := appendJSON(buf, ev); !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("appendJSON(%q, %#v):\n got %q\nwant %q", prefix, ev, got, want)
	}
}

func randomEvent(rnd *rand.Rand) sdk.Event {
	ev := sdk.Event{
		Time:   randomTime(rnd),
		Module: randomString(rnd, 3),
		Kind:   randomString(rnd, 3),
		Comm:   randomString(rnd, 3),
		PID:    rnd.Uint32(), TID: rnd.Uint32() >> rnd.IntN(32), UID: rnd.Uint32() >> rnd.IntN(32),
		Conn: randomConn(uint8(rnd.Uint32()), rnd.Uint64()>>rnd.IntN(64)),
	}
	for range rnd.IntN(6) {
		ev.Fields = append(ev.Fields, sdk.Field{Key: randomString(rnd, 3), Value: randomString(rnd, 5)})
	}
	if rnd.IntN(8) != 0 {
		ev.Payload = []byte(randomString(rnd, 30))
	}
	return ev
}

// randomString strings together up to n pieces: runs of plain ASCII of
// every length and the bytes and runes that need care.
func randomString(rnd *rand.Rand, n int) string {
	pieces := []string{
		"\"", "\\", "\x00", "\x01", "\x1f", " ", "\x7f", "\r\n", "\t", "\n", "/",
		"é", "世", "😀", "\uFFFD", "\u2028", "\u2029", "\u2027", "\u202a", "\u00a0", "\U0010FFFF",
		"\x80", "\xff", "\xfe", "\xc0\x80", "\xc1\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
		"\xe2\x80", "\xe2", "\xf0\x9f\x98", "\xf0\x9f", "\xe2\x80\xa8\x80",
	}
	var b strings.Builder
	for range rnd.IntN(n + 1) {
		switch rnd.IntN(4) {
		case 0:
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		case 1:
			for range rnd.IntN(4) {
				b.WriteByte(byte(rnd.Uint32()))
			}
		default:
			for range rnd.IntN(70) {
				b.WriteByte(byte(' ' + rnd.IntN(0x7f-' ')))
			}
		}
	}
	return b.String()
}

func randomTime(rnd *rand.Rand) time.Time {
	nsec := []int64{0, 1, 10, 100, 1000, 120000000, 999999999, 100000000, 5, rnd.Int64N(1e9), rnd.Int64N(1e9), rnd.Int64N(1e6) * 1000}[rnd.IntN(12)]
	var sec int64
	switch rnd.IntN(6) {
	case 0: // the years this host lives in
		sec = 1.7e9 + rnd.Int64N(1e9)
	case 1: // years 1 to 9999
		sec = jsonTimeMin + rnd.Int64N(jsonTimeMax-jsonTimeMin+1)
	case 2: // the edges of that range and of days
		sec = []int64{jsonTimeMin, jsonTimeMax, 0, 951782400, 951868799, 4107542400}[rnd.IntN(6)] + rnd.Int64N(5) - 2
	case 3: // far away
		sec = rnd.Int64() >> rnd.IntN(64)
		if rnd.IntN(2) == 0 {
			sec = -sec
		}
	case 4:
		return time.Date(rnd.IntN(12000)-1000, time.Month(rnd.IntN(14)), rnd.IntN(33), rnd.IntN(25), rnd.IntN(61), rnd.IntN(61), int(nsec), time.UTC)
	default:
		return time.Now().Add(time.Duration(rnd.Int64N(1e12)))
	}
	return time.Unix(sec, nsec).In(time.FixedZone("z", rnd.IntN(100000)-50000))
}

// randomConn returns a connection with the parts that the bits of which
// say.
func randomConn(which uint8, id uint64) sdk.Connection {
	var c sdk.Connection
	if which&1 != 0 {
		c.ID = id
	}
	if which&2 != 0 {
		c.Local = netip.MustParseAddrPort("10.0.0.2:51234")
	}
	if which&4 != 0 {
		c.Remote = netip.MustParseAddrPort("[2001:db8::1]:443")
	}
	c.Direction = sdk.Direction(which >> 3 % 4)
	return c
}

// BenchmarkJSONPayload encodes events that differ only in their payload,
// with appendJSON and with refAppendJSON.
func BenchmarkJSONPayload(b *testing.B) {
	payloads := []struct {
		name string
		p    []byte
	}{
		{"http", httpEvents()[1].Payload},
		{"ascii", []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789+/", 27))},
		{"utf8", []byte(strings.Repeat("Grüße, 世界! Ça va? ", 40))},
		{"binary", []byte(strings.Repeat("\x16\x03\x01\x00\xf4\x01\x00\x00\xf0\x03\x03\x9a\x1c", 80))},
	}
	for _, p := range payloads {
		ev := sdk.Event{Time: t0, Module: "openssl", Kind: "tls_data", Comm: "nginx", Payload: p.p}
		for _, enc := range []struct {
			name string
			f    func([]byte, *sdk.Event) []byte
		}{{"new", appendJSON}, {"ref", refAppendJSON}} {
			b.Run(p.name+"/"+enc.name, func(b *testing.B) {
				var buf []byte
				b.SetBytes(int64(len(p.p)))
				for b.Loop() {
					buf = enc.f(buf[:0], &ev)
				}
			})
		}
	}
}

// BenchmarkJSONTime formats times of one day with assorted fractions.
func BenchmarkJSONTime(b *testing.B) {
	var ts [64]time.Time
	for i := range ts {
		ts[i] = t0.Add(time.Duration(i) * 1234567891)
	}
	var buf []byte
	b.Run("appendJSONTime", func(b *testing.B) {
		for b.Loop() {
			for i := range ts {
				buf = appendJSONTime(buf[:0], ts[i])
			}
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			for i := range ts {
				buf = ts[i].UTC().AppendFormat(buf[:0], time.RFC3339Nano)
			}
		}
	})
}

// TestJSONEncoderKeptParts writes events that differ from the one before
// in one value the encoder keeps, and one whose strings are rewritten in
// place between events, as a reused batch buffer would be: each line must
// be what the reference writes.
func TestJSONEncoderKeptParts(t *testing.T) {
	var enc jsonEncoder
	check := func(what string, ev *sdk.Event) {
		t.Helper()
		want := refAppendJSON(nil, ev)
		if got := enc.append(nil, ev, nil); !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	buf := []byte("openssltls_datacurl")
	base := sdk.Event{
		Time: t0, Module: string(buf[:7]), Kind: "tls_data", Comm: "curl", PID: 10, TID: 11, UID: 12,
		Conn: sdk.Connection{ID: 99, Local: netip.MustParseAddrPort("127.0.0.1:40000"),
			Remote: netip.MustParseAddrPort("127.0.0.1:443"), Direction: sdk.DirectionEgress},
	}
	check("first", &base)
	changes := map[string]func(*sdk.Event){
		"module": func(ev *sdk.Event) { ev.Module = "opensslx" },
		"kind":   func(ev *sdk.Event) { ev.Kind = "tls_dat" },
		"comm":   func(ev *sdk.Event) { ev.Comm = "curl2" },
		"pid":    func(ev *sdk.Event) { ev.PID++ },
		"tid":    func(ev *sdk.Event) { ev.TID++ },
		"uid":    func(ev *sdk.Event) { ev.UID++ },
		// The same bytes split differently between module and kind.
		"split":     func(ev *sdk.Event) { ev.Module, ev.Kind = "openss", "ltls_data" },
		"id":        func(ev *sdk.Event) { ev.Conn.ID++ },
		"local":     func(ev *sdk.Event) { ev.Conn.Local = netip.MustParseAddrPort("127.0.0.1:40001") },
		"remote":    func(ev *sdk.Event) { ev.Conn.Remote = netip.MustParseAddrPort("[::1]:443") },
		"direction": func(ev *sdk.Event) { ev.Conn.Direction = sdk.DirectionIngress },
		"no id":     func(ev *sdk.Event) { ev.Conn.ID = 0 },
	}
	for what, change := range changes {
		ev := base
		change(&ev)
		check(what, &ev)
		check(what+" again", &ev)
		check("back from "+what, &base)
	}
	// The module string points into buf: rewritten in place, the encoder
	// must see the new value, not the kept one.
	copy(buf, "OPENSSL")
	check("rewritten in place", &base)
}
