package output

import (
	"net/netip"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

var t0 = time.Date(2026, 11, 25, 21, 10, 0, 123456789, time.UTC)

// testEvents are the events of the golden files, one of each shape.
func testEvents() []sdk.Event {
	tlsRecord := []byte{
		0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03, 0x9a, 0x1c, 0x47, 0x45, 0x54,
		0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x00, 0xff, 0x7f, 0x80, 0x0d, 0x0a, 0x41, 0x42, 0x43,
		0x44, 0x45, 0x46,
	}
	return []sdk.Event{
		{
			Time: t0, Module: "bash", Kind: "command", PID: 123, TID: 123, UID: 0, Comm: "bash",
			Payload: []byte("ls -la\n"),
		},
		{
			Time: t0.Add(time.Millisecond), Module: "openssl", Kind: "tls_data", PID: 4242, TID: 4243, UID: 1000, Comm: "curl",
			Payload: tlsRecord,
			Conn: sdk.Connection{
				ID:        7,
				Local:     netip.MustParseAddrPort("10.0.0.2:51234"),
				Remote:    netip.MustParseAddrPort("93.184.216.34:443"),
				Direction: sdk.DirectionEgress,
			},
			Fields: []sdk.Field{{Key: "version", Value: "TLS1.3"}},
		},
		{
			Time: t0.Add(2 * time.Millisecond), Module: "openssl", Kind: "tls_data", PID: 4242, TID: 4242, UID: 1000, Comm: "curl",
			Payload: []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, wörld\n"),
			Conn: sdk.Connection{
				ID:        8,
				Local:     netip.MustParseAddrPort("[2001:db8::2]:40000"),
				Remote:    netip.MustParseAddrPort("[2001:db8::1]:443"),
				Direction: sdk.DirectionIngress,
			},
			Fields: []sdk.Field{
				{Key: "fd", Value: "5"},
				{Key: "lib", Value: "/usr/lib/x86_64-linux-gnu/libssl.so.3"},
				{Key: "note", Value: "two words"},
				{Key: "empty", Value: ""},
				{Key: "url", Value: "https://example.com/a?b=c"},
			},
		},
		Gap(t0.Add(3*time.Millisecond), "bash", "plugin crashed", sdk.Field{Key: "restarts", Value: "1"}, sdk.Field{Key: "lost", Value: "12"}),
		Notice(t0.Add(4*time.Millisecond), "openssl", "attached 4 probes"),
		{
			Time: t0.Add(5 * time.Millisecond), Module: "nspr", Kind: "tls_data", PID: 9, TID: 10, UID: 1, Comm: "ünï code\x00",
			Payload: []byte("\x1b[31mred\x1b[0m"),
			Conn:    sdk.Connection{ID: 3},
			Fields: []sdk.Field{
				{Key: "ends", Value: "with colon:"},
				{Key: "bad", Value: "x\xffy"},
				{Key: "quote", Value: `say "hi"`},
			},
		},
		{
			Time: t0.Add(6 * time.Millisecond), Module: "bash", Kind: "command", PID: 1, TID: 1, UID: 0, Comm: "bash",
			Payload: []byte("echo \"q\" \\ \ttab"),
			Conn:    sdk.Connection{Remote: netip.MustParseAddrPort("127.0.0.1:22")},
			Fields:  []sdk.Field{{Key: "sep", Value: "a\u2028b"}},
		},
		{},
	}
}
