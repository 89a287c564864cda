package stream

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// bodyDecoder undoes content codings, reusing its readers and buffers.
type bodyDecoder struct {
	src  bytes.Reader
	gz   *gzip.Reader
	zl   io.ReadCloser
	fl   io.ReadCloser
	bufs [2][]byte
}

// decode undoes the content codings listed in encoding (as the
// Content-Encoding header lists them, the first applied first) on body.
// It returns the decoded body, the codings it undid ("" when none), and
// whether the decoded body was cut at limit. When a coding is unknown or
// fails it returns body unchanged and why.
func (bd *bodyDecoder) decode(body []byte, encoding string, limit int) (out []byte, applied string, truncated bool, err error) {
	if encoding == "" || len(body) == 0 {
		return body, "", false, nil
	}
	var codings [8]string
	n := 0
	for tok := range strings.SplitSeq(encoding, ",") {
		tok = strings.ToLower(strings.Trim(tok, " \t"))
		switch tok {
		case "", "identity":
			continue
		case "gzip", "x-gzip", "deflate":
		default:
			return body, "", false, fmt.Errorf("unsupported content-encoding %q", tok)
		}
		if n == len(codings) {
			return body, "", false, fmt.Errorf("too many content codings in %q", encoding)
		}
		codings[n] = tok
		n++
	}
	if n == 0 {
		return body, "", false, nil
	}
	out = body
	for i := n - 1; i >= 0; i-- {
		buf := &bd.bufs[i%2]
		var cut bool
		*buf, cut, err = bd.inflate((*buf)[:0], out, codings[i], limit)
		if err != nil {
			bd.release()
			return body, "", false, fmt.Errorf("decoding %s body: %w", codings[i], err)
		}
		truncated = truncated || cut
		out = *buf
	}
	return out, strings.Join(codings[:n], ", "), truncated, nil
}

// release drops buffers grown large by one body.
func (bd *bodyDecoder) release() {
	for i := range bd.bufs {
		if cap(bd.bufs[i]) > keepBufBytes {
			bd.bufs[i] = nil
		}
	}
}

// inflate appends the decompressed src to dst, up to limit bytes.
func (bd *bodyDecoder) inflate(dst, src []byte, coding string, limit int) ([]byte, bool, error) {
	bd.src.Reset(src)
	var r io.Reader
	switch {
	case coding == "deflate" && !looksZlib(src):
		if bd.fl == nil {
			bd.fl = flate.NewReader(&bd.src)
		} else if err := bd.fl.(flate.Resetter).Reset(&bd.src, nil); err != nil {
			return dst, false, err
		}
		r = bd.fl
	case coding == "deflate":
		if bd.zl == nil {
			zl, err := zlib.NewReader(&bd.src)
			if err != nil {
				return dst, false, err
			}
			bd.zl = zl
		} else if err := bd.zl.(zlib.Resetter).Reset(&bd.src, nil); err != nil {
			return dst, false, err
		}
		r = bd.zl
	default:
		if bd.gz == nil {
			gz, err := gzip.NewReader(&bd.src)
			if err != nil {
				return dst, false, err
			}
			bd.gz = gz
		} else if err := bd.gz.Reset(&bd.src); err != nil {
			return dst, false, err
		}
		r = bd.gz
	}
	for {
		if len(dst) >= limit {
			// One more byte tells a body of exactly limit from a longer one.
			var one [1]byte
			if n, _ := io.ReadFull(r, one[:]); n > 0 {
				return dst, true, nil
			}
			return dst, false, nil
		}
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(max(cap(dst), 4096), limit-len(dst)))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, false, nil
		}
		if err != nil {
			return dst, false, err
		}
	}
}

// looksZlib reports whether b starts with a zlib header (RFC 1950), which
// "deflate" should carry but often does not.
func looksZlib(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}
