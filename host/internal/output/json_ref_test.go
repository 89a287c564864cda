package output

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
)

// refAppendJSON is jsonEncoder.append as it was before the fast paths: the
// reference the differential tests hold the encoder to. Keep it as it is.
func refAppendJSON(dst []byte, ev *sdk.Event) []byte {
	dst = append(dst, `{"time":"`...)
	dst = ev.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","module":`...)
	dst = refAppendJSONString(dst, ev.Module)
	dst = append(dst, `,"kind":`...)
	dst = refAppendJSONString(dst, ev.Kind)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.PID), 10)
	dst = append(dst, `,"tid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.TID), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
	dst = append(dst, `,"comm":`...)
	dst = refAppendJSONString(dst, ev.Comm)
	if len(ev.Fields) > 0 {
		dst = append(dst, `,"fields":{`...)
		for i, f := range ev.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = refAppendJSONString(dst, f.Key)
			dst = append(dst, ':')
			dst = refAppendJSONString(dst, f.Value)
		}
		dst = append(dst, '}')
	}
	if len(ev.Payload) > 0 {
		if utf8.Valid(ev.Payload) {
			dst = append(dst, `,"payload":`...)
			dst = refAppendJSONBytes(dst, ev.Payload)
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

func refAppendJSONString(dst []byte, s string) []byte {
	return refAppendJSONText(dst, s, utf8.DecodeRuneInString)
}

func refAppendJSONBytes(dst, s []byte) []byte {
	return refAppendJSONText(dst, s, utf8.DecodeRune)
}

func refPlainASCII8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return (x&highs)|((x-0x20*ones) & ^x & highs)|hasZero(x^('"'*ones))|hasZero(x^('\\'*ones)) == 0
}

func refAppendJSONText[S string | []byte](dst []byte, s S, decode func(S) (rune, int)) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && refPlainASCII8(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
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
