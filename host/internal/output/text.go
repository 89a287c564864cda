package output

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
)

// textTimeLayout is RFC 3339 with milliseconds; times are written in UTC.
const textTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// inPayload reports fields that repeat what the payload block shows
// (HTTP headers and trailers, which the stream decoder puts in both): text
// leaves them out, JSON keeps them.
func inPayload(key string) bool {
	return strings.HasPrefix(key, "header.") || strings.HasPrefix(key, "trailer.")
}

// indent starts every line of a payload block.
const indent = "    "

// appendText appends ev as text:
//
//	TIME MODULE [pid=P tid=T uid=U [comm=C]] [cgroup=PATH [container_id=... container_runtime=... pod_uid=... qos_class=...] | cgroup_id=N] [conn=ID] [LOCAL -> REMOTE] [dir=D] KIND [KEY=VALUE...][: PAYLOAD]
//
// The ids are left out when pid, tid, uid and comm are all unset (host
// records). A value that is empty, holds spaces, quotes, '=', anything not
// printable or ends in ':' is quoted Go-style. A payload that is one line
// of printable text ends the line after ": "; more lines of text follow
// as an indented block, anything else as an indented hex dump, after
// " (N bytes):" or " (N bytes, binary):".
func appendText(dst []byte, ev *sdk.Event, cg *cgroupCache) []byte {
	dst = ev.Time.UTC().AppendFormat(dst, textTimeLayout)
	dst = append(dst, ' ')
	dst = appendTextValue(dst, orDash(ev.Module))
	if ev.PID != 0 || ev.TID != 0 || ev.UID != 0 || ev.Comm != "" {
		dst = append(dst, " pid="...)
		dst = strconv.AppendUint(dst, uint64(ev.PID), 10)
		dst = append(dst, " tid="...)
		dst = strconv.AppendUint(dst, uint64(ev.TID), 10)
		dst = append(dst, " uid="...)
		dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
		if ev.Comm != "" {
			dst = append(dst, " comm="...)
			dst = appendTextValue(dst, ev.Comm)
		}
	}
	if cg != nil {
		dst = append(dst, cg.text...)
	}
	if c := ev.Conn; c.Known() {
		if c.ID != 0 {
			dst = append(dst, " conn="...)
			dst = strconv.AppendUint(dst, c.ID, 10)
		}
		if c.Local.IsValid() || c.Remote.IsValid() {
			dst = append(dst, ' ')
			dst = appendAddrPort(dst, c.Local)
			dst = append(dst, " -> "...)
			dst = appendAddrPort(dst, c.Remote)
		}
		if c.Direction != sdk.DirectionUnknown {
			dst = append(dst, " dir="...)
			dst = append(dst, c.Direction.String()...)
		}
	}
	dst = append(dst, ' ')
	dst = appendTextValue(dst, orDash(ev.Kind))
	for _, f := range ev.Fields {
		if inPayload(f.Key) {
			continue
		}
		dst = append(dst, ' ')
		dst = appendTextValue(dst, f.Key)
		dst = append(dst, '=')
		dst = appendTextValue(dst, f.Value)
	}

	p := ev.Payload
	if len(p) == 0 {
		return append(dst, '\n')
	}
	if !printable(p) {
		dst = append(dst, " ("...)
		dst = strconv.AppendInt(dst, int64(len(p)), 10)
		dst = append(dst, " bytes, binary):\n"...)
		return appendHexDump(dst, p)
	}
	text := trimNewline(p)
	if bytes.IndexByte(text, '\n') < 0 {
		dst = append(dst, ": "...)
		dst = append(dst, text...)
		return append(dst, '\n')
	}
	dst = append(dst, " ("...)
	dst = strconv.AppendInt(dst, int64(len(p)), 10)
	dst = append(dst, " bytes):\n"...)
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > 0 {
			dst = append(dst, indent...)
			dst = append(dst, line...)
		}
		dst = append(dst, '\n')
	}
	return dst
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendAddrPort appends a, or "?" when it is not valid.
func appendAddrPort(dst []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return append(dst, '?')
	}
	return a.AppendTo(dst)
}

// appendTextValue appends s, quoted when it would be ambiguous or unsafe
// on a terminal as it is.
func appendTextValue(dst []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(dst, s)
	}
	return append(dst, s...)
}

func needsQuote(s string) bool {
	if s == "" || s[len(s)-1] == ':' {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '"' || c == '=' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !unicode.IsPrint(r) {
			return true
		}
		i += n
	}
	return false
}

// printable reports whether p is UTF-8 text that is safe to show as it is:
// graphic characters, tabs, newlines, and carriage returns before a
// newline.
func printable(p []byte) bool {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= ' ' && c < 0x7f, c == '\t', c == '\n':
			case c == '\r' && i+1 < len(p) && p[i+1] == '\n':
			default:
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && n == 1 || !unicode.IsGraphic(r) {
			return false
		}
		i += n
	}
	return true
}

// trimNewline removes one trailing "\n" or "\r\n".
func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
		if n := len(p); n > 0 && p[n-1] == '\r' {
			p = p[:n-1]
		}
	}
	return p
}

const hexDigits = "0123456789abcdef"

// appendHexDump appends p as indented lines of 16 bytes:
//
//	00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|
func appendHexDump(dst, p []byte) []byte {
	for off := 0; off < len(p); off += 16 {
		row := p[off:min(off+16, len(p))]
		dst = append(dst, indent...)
		for shift := 28; shift >= 0; shift -= 4 {
			dst = append(dst, hexDigits[(off>>shift)&0xf])
		}
		dst = append(dst, ' ')
		for i := range 16 {
			dst = append(dst, ' ')
			if i == 8 {
				dst = append(dst, ' ')
			}
			if i < len(row) {
				dst = append(dst, hexDigits[row[i]>>4], hexDigits[row[i]&0xf])
			} else {
				dst = append(dst, ' ', ' ')
			}
		}
		dst = append(dst, "  |"...)
		for _, c := range row {
			if c < ' ' || c >= 0x7f {
				c = '.'
			}
			dst = append(dst, c)
		}
		dst = append(dst, "|\n"...)
	}
	return dst
}
