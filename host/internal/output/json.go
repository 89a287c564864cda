package output

import (
	"encoding/base64"
	"encoding/binary"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/ecaphost/ecaphost/sdk"
)

// jsonEncoder writes events as JSON, with a memory of the last events it
// wrote. Most events come in runs from one thread and one connection: the
// part from "module" to "comm" and the connection object of recent events
// are kept as written, and copied instead of written again when the next
// event has the same values. Not safe for concurrent use.
type jsonEncoder struct {
	idents [16]jsonIdent
	conns  [64]jsonConn
}

// jsonIdent is a kept identity part: from ,"module" to the end of "comm".
type jsonIdent struct {
	ok            bool
	pid, tid, uid uint32
	nm, nk        int    // lengths of module and kind in key
	key           []byte // module, kind and comm back to back
	json          []byte
}

// jsonConn is a kept connection object, from ,"connection" to its '}'.
type jsonConn struct {
	conn sdk.Connection // the zero Connection, never kept, marks a free slot
	json []byte
}

// jsonKeepMax is the longest part an encoder keeps.
const jsonKeepMax = 256

// append appends ev as one line of JSON:
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
//
// It is the host's hottest code: the tests hold it byte for byte to a
// straightforward copy of it in json_ref_test.go.
func (e *jsonEncoder) append(dst []byte, ev *sdk.Event, cg *cgroupCache) []byte {
	dst = append(dst, `{"time":"`...)
	dst = appendJSONTime(dst, ev.Time)
	dst = append(dst, '"')
	dst = e.appendIdent(dst, ev)
	if cg != nil {
		dst = append(dst, cg.json...)
	}
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
		// Escape the payload in the hope that it is UTF-8 (it mostly is),
		// and take it back for base64 at the first byte that is not.
		n := len(dst)
		dst = append(dst, `,"payload":`...)
		var ok bool
		if dst, ok = appendJSONText(dst, ev.Payload, true); !ok {
			dst = append(dst[:n], `,"payload_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, ev.Payload)
			dst = append(dst, '"')
		}
	}
	dst = append(dst, `,"payload_len":`...)
	dst = strconv.AppendInt(dst, int64(len(ev.Payload)), 10)
	if c := ev.Conn; c.Known() {
		dst = e.appendConn(dst, c)
	}
	return append(dst, "}\n"...)
}

// appendIdent appends ,"module" to "comm" of ev, copied from idents when
// an event with the same values wrote them last in its slot.
func (e *jsonEncoder) appendIdent(dst []byte, ev *sdk.Event) []byte {
	// The kind's length in the slot's hash keeps a thread's requests and
	// responses apart.
	nm, nk := len(ev.Module), len(ev.Kind)
	k := &e.idents[(ev.PID*0x9e3779b1^ev.TID^uint32(nk)*0x85ebca6b)>>28]
	if k.ok && k.pid == ev.PID && k.tid == ev.TID && k.uid == ev.UID &&
		k.nm == nm && k.nk == nk && len(k.key) == nm+nk+len(ev.Comm) &&
		string(k.key[:nm]) == ev.Module && string(k.key[nm:nm+nk]) == ev.Kind && string(k.key[nm+nk:]) == ev.Comm {
		return append(dst, k.json...)
	}
	n := len(dst)
	dst = append(dst, `,"module":`...)
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
	if len(dst)-n <= jsonKeepMax {
		// The strings are copied: an event's strings may point into
		// memory that is reused for later events.
		k.ok, k.pid, k.tid, k.uid, k.nm, k.nk = true, ev.PID, ev.TID, ev.UID, nm, nk
		k.key = append(append(append(k.key[:0], ev.Module...), ev.Kind...), ev.Comm...)
		k.json = append(k.json[:0], dst[n:]...)
	}
	return dst
}

// appendConn appends the connection object of c, known, copied from conns
// when the same connection wrote it last in its slot.
func (e *jsonEncoder) appendConn(dst []byte, c sdk.Connection) []byte {
	// Both directions of a connection, which alternate, have a slot each.
	h := c.ID ^ uint64(c.Local.Port())<<16 ^ uint64(c.Remote.Port()) ^ uint64(c.Direction)<<40
	k := &e.conns[(h*0x9e3779b97f4a7c15)>>58]
	if k.conn == c {
		return append(dst, k.json...)
	}
	n := len(dst)
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
	if len(dst)-n <= jsonKeepMax {
		k.conn = c
		k.json = append(k.json[:0], dst[n:]...)
	}
	return dst
}

// Unix times of the first and the last second that appendJSONTime
// formats itself: the years 1 to 9999.
const (
	jsonTimeMin = -62135596800 // 0001-01-01T00:00:00Z
	jsonTimeMax = 253402300799 // 9999-12-31T23:59:59Z
)

// appendJSONTime appends t in UTC as time.RFC3339Nano does: the fraction
// of a second without its trailing zeros, and none when it is zero.
func appendJSONTime(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < jsonTimeMin || sec > jsonTimeMax {
		return t.UTC().AppendFormat(dst, time.RFC3339Nano)
	}
	// Days since 0000-03-01 (positive in this range), then the civil
	// date of that day by Howard Hinnant's civil_from_days: years that
	// start in March, so that a leap day is the last of its year.
	days := uint64(sec-jsonTimeMin)/86400 + 306
	secs := uint64(sec-jsonTimeMin) % 86400
	era := days / 146097
	doe := days % 146097                                   // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], March is 0
	day := doy - (153*mp+2)/5 + 1                          // [1, 31]
	year, month := era*400+yoe, mp+3
	if mp >= 10 {
		year, month = year+1, mp-9
	}

	n := len(dst)
	dst = append(dst, "0000-00-00T00:00:00"...)
	b := dst[n : n+19 : n+19]
	putDigits2(b[0:2], year/100)
	putDigits2(b[2:4], year%100)
	putDigits2(b[5:7], month)
	putDigits2(b[8:10], day)
	putDigits2(b[11:13], secs/3600)
	putDigits2(b[14:16], secs/60%60)
	putDigits2(b[17:19], secs%60)

	if ns := uint64(t.Nanosecond()); ns != 0 {
		// All nine digits, then the trailing zeros off.
		n := len(dst)
		dst = append(dst, ".000000000"...)
		f := dst[n+1 : n+10 : n+10]
		f[0] = byte('0' + ns/1e8)
		ns %= 1e8
		putDigits2(f[1:3], ns/1e6)
		ns %= 1e6
		putDigits2(f[3:5], ns/1e4)
		ns %= 1e4
		putDigits2(f[5:7], ns/100)
		putDigits2(f[7:9], ns%100)
		for dst[len(dst)-1] == '0' {
			dst = dst[:len(dst)-1]
		}
	}
	return append(dst, 'Z')
}

const digits2 = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// putDigits2 writes v, below 100, as two decimal digits.
func putDigits2(b []byte, v uint64) {
	b[0], b[1] = digits2[2*v], digits2[2*v+1]
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD; U+2028 and U+2029 are escaped for JavaScript's sake.
func appendJSONString(dst []byte, s string) []byte {
	// Most strings, the keys and values of fields, are short and need
	// no escaping: check that first, a word at a time.
	var x uint64
	switch n := len(s); {
	case n > jsonPlainMax:
		goto escape
	case n >= 8:
		// Words of 8 bytes, the last one overlapping the one before.
		// A byte at or above 0x80 may upset plain for the bytes after
		// it, but not the high bits of or.
		or, plain := uint64(0), ^uint64(0)
		for i := 0; i < n-8; i += 8 {
			x = jsonLoad64(s[i:])
			or, plain = or|x, plain&jsonPlain8(x)
		}
		x = jsonLoad64(s[n-8:])
		if (or|x|^(plain&jsonPlain8(x)))&jsonHighs != 0 {
			goto escape
		}
	case n >= 4:
		// Two words of 4 bytes, overlapping when n < 8.
		x = uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[n-4])<<32 | uint64(s[n-3])<<40 | uint64(s[n-2])<<48 | uint64(s[n-1])<<56
		if jsonSpecial8(x) != 0 {
			goto escape
		}
	case n > 0:
		// Every byte of s at least once, and nothing else.
		x = uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16
		x |= x << 24
		if jsonSpecial8(x|x<<48) != 0 {
			goto escape
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')

escape:
	// appendJSONText only reads s.
	dst, _ = appendJSONText(dst, unsafe.Slice(unsafe.StringData(s), len(s)), false)
	return dst
}

// jsonPlainMax is the length up to which appendJSONString checks whether
// a string needs escaping at all before it escapes it.
const jsonPlainMax = 64

// jsonLoad64 returns the first 8 bytes of s, a little-endian word.
func jsonLoad64(s string) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// appendJSONText appends s as a JSON string, as appendJSONString does.
// If strict, it gives up on the first byte that is not valid UTF-8 and
// returns false, with dst grown by an unspecified amount.
func appendJSONText(dst, s []byte, strict bool) ([]byte, bool) {
	dst = append(dst, '"')
	start := 0
	for i := 0; ; {
		// Find the next byte that needs attention: one that a JSON
		// string cannot hold as it is, or that starts a multi-byte UTF-8
		// sequence. Runs of plain ASCII go 16 or 8 bytes at a time.
		for len(s)-i >= 16 {
			// s[i:i+16] without the bounds checks: 0 <= i <= len(s)-16.
			w := (*[16]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), i))
			x, y := binary.LittleEndian.Uint64(w[:8]), binary.LittleEndian.Uint64(w[8:])
			if (x|y|^(jsonPlain8(x)&jsonPlain8(y)))&jsonHighs != 0 {
				break
			}
			i += 16
		}
	scan:
		for {
			switch n := len(s) - i; {
			case n >= 8:
				if m := jsonSpecial8(binary.LittleEndian.Uint64(s[i : i+8])); m != 0 {
					i += bits.TrailingZeros64(m) / 8
					break scan
				}
				i += 8
			case n > 0 && len(s) >= 8:
				// Load the last 8 bytes and shift out those before i;
				// the bytes shifted in are masked out.
				shift := uint(8 * (8 - n))
				m := jsonSpecial8(binary.LittleEndian.Uint64(s[len(s)-8:])>>shift) & (jsonHighs >> shift)
				if m == 0 {
					i = len(s)
				} else {
					i += bits.TrailingZeros64(m) / 8
				}
				break scan
			default:
				for ; i < len(s); i++ {
					if c := s[i]; c < ' ' || c == '"' || c == '\\' || c >= utf8.RuneSelf {
						break
					}
				}
				break scan
			}
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			if e := jsonEscapes[c]; e != 0 {
				dst = append(dst, '\\', e)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			// Text has lines that end in "\r\n": take the pair at once.
			if c == '\r' && i < len(s) && s[i] == '\n' {
				dst = append(dst, '\\', 'n')
				i++
			}
			start = i
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			if strict {
				return dst, false
			}
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
	return append(dst, '"'), true
}

// jsonEscapes holds, for the ASCII bytes that a JSON string cannot hold
// as they are, the letter of their two-byte escape, or 0 for \u00XX.
var jsonEscapes = [utf8.RuneSelf]byte{'"': '"', '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't'}

const jsonOnes, jsonHighs = 0x0101010101010101, 0x8080808080808080

// jsonSpecial8 returns x, 8 bytes of a string in little-endian order, with
// the high bit set in every byte that needs escaping or UTF-8 decoding
// (below 0x20, '"', '\\', at or above 0x80) and the other bits clear. Only
// the lowest byte with its bit set is sure to be one: past a byte at or
// above 0x80, a carry may set or clear the bits of others.
func jsonSpecial8(x uint64) uint64 {
	return (x | ^jsonPlain8(x)) & jsonHighs
}

// jsonPlain8 has the high bit set in the bytes of x below 0x80 that are
// not below 0x20, '"' or '\\'. For a byte b below 0x80 none of the sums
// carries into the next byte: b+0x60 has its high bit set when b >= 0x20,
// and (b^c)+0x7f when b != c.
func jsonPlain8(x uint64) uint64 {
	return (x + (0x80-0x20)*jsonOnes) & ((x ^ '"'*jsonOnes) + 0x7f*jsonOnes) & ((x ^ '\\'*jsonOnes) + 0x7f*jsonOnes)
}
