package output

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
)

// appendJSON appends ev as one line of JSON:
//
//	{"time":RFC3339Nano,"module":S,"kind":S,"pid":N,"tid":N,"uid":N,"comm":S,
//	 "fields":{KEY:S,...},"payload":S|"payload_b64":S,"payload_len":N,
//	 "connection":{"id":N,"local":S,"remote":S,"direction":S}}
//
// The keys time, module, kind, pid, tid, uid, comm and payload_len are
// always there. fields is left out when there are none (and keeps the
// event's order, duplicates included); payload when the payload is empty,
// and it becomes payload_b64 (standard base64) when the payload is not
// valid UTF-8; connection when nothing is known of it, and each of its
// keys when unknown. Strings that are not valid UTF-8 get U+FFFD.
func appendJSON(dst []byte, ev *sdk.Event) []byte {
	dst = append(dst, `{"time":"`...)
	dst = ev.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","module":`...)
	dst = appendJSONString(dst, ev.Module)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, ev.Kind)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.PID), 10)
	dst = append(dst, `,"tid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.TID), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
	dst = append(dst, `,"comm":`...)
	dst = appendJSONString(dst, ev.Comm)
	if len(ev.Fields) > 0 {
		dst = append(dst, `,"fields":{`...)
		for i, f := range ev.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f.Key)
			dst = append(dst, ':')
			dst = appendJSONString(dst, f.Value)
		}
		dst = append(dst, '}')
	}
	if len(ev.Payload) > 0 {
		if utf8.Valid(ev.Payload) {
			dst = append(dst, `,"payload":`...)
			dst = appendJSONBytes(dst, ev.Payload)
		} else {
			dst = append(dst, `,"payload_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, ev.Payload)
			dst = append(dst, '"')
		}
	}
	dst = append(dst, `,"payload_len":`...)
	dst = strconv.AppendInt(dst, int64(len(ev.Payload)), 10)
	if c := ev.Conn; c.Known() {
		dst = append(dst, `,"connection":{`...)
		sep := false
		comma := func() {
			if sep {
				dst = append(dst, ',')
			}
			sep = true
		}
		if c.ID != 0 {
			comma()
			dst = append(dst, `"id":`...)
			dst = strconv.AppendUint(dst, c.ID, 10)
		}
		if c.Local.IsValid() {
			comma()
			dst = append(dst, `"local":"`...)
			dst = c.Local.AppendTo(dst)
			dst = append(dst, '"')
		}
		if c.Remote.IsValid() {
			comma()
			dst = append(dst, `"remote":"`...)
			dst = c.Remote.AppendTo(dst)
			dst = append(dst, '"')
		}
		if c.Direction != sdk.DirectionUnknown {
			comma()
			dst = append(dst, `"direction":"`...)
			dst = append(dst, c.Direction.String()...)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, "}\n"...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD; U+2028 and U+2029 are escaped for JavaScript's sake.
func appendJSONString(dst []byte, s string) []byte {
	return appendJSONText(dst, s, utf8.DecodeRuneInString)
}

// appendJSONBytes is appendJSONString for bytes.
func appendJSONBytes(dst, s []byte) []byte {
	return appendJSONText(dst, s, utf8.DecodeRune)
}

// plainASCII8 reports whether none of the 8 bytes of x needs escaping or
// UTF-8 decoding in a JSON string: no byte below 0x20, '"', '\\' or at or
// above 0x80. (A byte b is zero in v when (v - 0x01..) & ^v & 0x80.. has
// its high bit.)
func plainASCII8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return (x&highs)|((x-0x20*ones) & ^x & highs)|hasZero(x^('"'*ones))|hasZero(x^('\\'*ones)) == 0
}

func appendJSONText[S string | []byte](dst []byte, s S, decode func(S) (rune, int)) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip runs of plain ASCII eight bytes at a time.
		for i+8 <= len(s) && plainASCII8(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := decode(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
