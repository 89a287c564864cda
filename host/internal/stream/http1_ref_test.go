package stream

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The functions below are h1head.parse, parseContentLength and isToken as
// they were before they were made cheaper, kept to check that the faster
// ones decide the same on any input.

// refParse parses a header block, start line first. text is owned by hd.
func refParse(hd *h1head, text string, request bool) error {
	hdrs := hd.headers[:0]
	*hd = h1head{headers: hdrs, contentLength: -1}
	line, text, _ := strings.Cut(text, "\n")
	line = strings.TrimSuffix(line, "\r")
	if request {
		method, rest, ok1 := strings.Cut(line, " ")
		target, version, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || !refIsToken(method) || !isTarget(target) || !isVersion(version) {
			return errStartLine
		}
		hd.method, hd.target, hd.proto = method, target, version
	} else {
		version, rest, _ := strings.Cut(line, " ")
		code, _, _ := strings.Cut(rest, " ")
		if !isVersion(version) || len(code) != 3 {
			return errStartLine
		}
		for i := 0; i < 3; i++ {
			if code[i] < '0' || code[i] > '9' {
				return errStartLine
			}
			hd.status = hd.status*10 + int(code[i]-'0')
		}
		if hd.status < 100 {
			return errStartLine
		}
		hd.proto = version
	}
	var te string
	for len(text) > 0 {
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: a continuation of the previous field's value
			if len(hd.headers) == 0 {
				return errHeaderLine
			}
			last := &hd.headers[len(hd.headers)-1]
			last.value = strings.TrimRight(last.value+" "+strings.Trim(line, " \t"), " ")
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !refIsToken(name) {
			return errHeaderLine
		}
		value = strings.Trim(value, " \t")
		hd.headers = append(hd.headers, hdr{name, value})
	}
	for _, f := range hd.headers {
		switch {
		case strings.EqualFold(f.name, "Content-Length"):
			n, err := refParseContentLength(f.value)
			if err != nil || hd.contentLength >= 0 && hd.contentLength != n {
				return errContentLength
			}
			hd.contentLength = n
		case strings.EqualFold(f.name, "Transfer-Encoding"):
			te = joinList(te, f.value)
		case strings.EqualFold(f.name, "Content-Encoding"):
			hd.encoding = joinList(hd.encoding, f.value)
		case strings.EqualFold(f.name, "Host") && hd.host == "":
			hd.host = f.value
		}
	}
	if te != "" {
		last := te
		if i := strings.LastIndexByte(te, ','); i >= 0 {
			last = te[i+1:]
		}
		if strings.EqualFold(strings.Trim(last, " \t"), "chunked") {
			hd.chunked = true
		} else {
			hd.otherTE = true
		}
		hd.contentLength = -1
	}
	return nil
}

// refParseContentLength accepts digits, or a list of identical values.
func refParseContentLength(v string) (int64, error) {
	n := int64(-1)
	for part := range strings.SplitSeq(v, ",") {
		part = strings.Trim(part, " \t")
		if part == "" || len(part) > 18 {
			return 0, errContentLength
		}
		var m int64
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, errContentLength
			}
			m = m*10 + int64(part[i]-'0')
		}
		if n >= 0 && m != n {
			return 0, fmt.Errorf("conflicting values %q: %w", v, errContentLength)
		}
		n = m
	}
	return n, nil
}

func refIsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// FuzzH1Head checks h1head.parse against refParse.
func FuzzH1Head(f *testing.F) {
	for _, s := range []string{
		getReq, okHead,
		"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\nCONTENT-LENGTH: 3, 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: ,\r\nContent-Length: 0x1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Fold: a\r\n  b \t\r\n\tc\r\nTransfer-Encoding: gzip, chunked\r\ntransfer-encoding: identity\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \t\r\nContent-Encoding: gzip\r\ncontent-encoding: deflate\r\n\r\n",
		"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.0 404 Not Found\nContent-Length:   \t0 \t\nX:\n\n",
		"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
		"HTTP/1.1 200 OK\r\n:empty\r\n\r\n",
		"HTTP/1.1 200 OK\r\n bad fold\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 200\r",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHo\xc5\xbft: x\r\nHost\r: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, text string, request bool) {
		gn, gerr := parseContentLength(text)
		wn, werr := refParseContentLength(text)
		if gn != wn || fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("parseContentLength(%q) = %d, %v, want %d, %v", text, gn, gerr, wn, werr)
		}
		if isToken(text) != refIsToken(text) {
			t.Fatalf("isToken(%q) = %v", text, isToken(text))
		}

		var got, want h1head
		// got is reused, as a direction reuses its h1head.
		got.parse("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false)
		gerr = got.parse(text, request)
		werr = refParse(&want, text, request)
		if gerr != werr {
			t.Fatalf("parse(%q, %v) = %v, want %v", text, request, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if len(got.headers) == 0 {
			got.headers = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parse(%q, %v):\n%+v\nwant\n%+v", text, request, got, want)
		}
	})
}

// FuzzH1HeaderKey checks the header keys of HTTP/1 messages against the
// field keys of their names: lines of names are the header blocks of
// consecutive messages, split at '|'.
func FuzzH1HeaderKey(f *testing.F) {
	f.Add("Server|Date|Content-Type|Content-Length\nserver|Date|content-type|Content-Length\nDate|Server", true)
	f.Add("Host|A|B|C|D|E|F|G|H|I|J|K|L|M|N|O|P|Q|R|S|T\nHost|a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t", false)
	f.Add(strings.Repeat("x", 70)+"|X\n"+strings.Repeat("X", 70)+"|x", true)
	f.Fuzz(func(t *testing.T, blocks string, request bool) {
		d := New(Options{})
		for round := 0; round < 2; round++ {
			for block := range strings.SplitSeq(blocks, "\n") {
				for i, name := range strings.Split(block, "|") {
					if name == "" {
						continue // header names are tokens
					}
					if got, want := d.h1HeaderKey(request, i, name), "header."+canonicalName(name); got != want {
						t.Fatalf("key of %q at %d = %q, want %q", name, i, got, want)
					}
					// The other kind of message keeps its own names.
					if got, want := d.h1HeaderKey(!request, 0, name+"-x"), "header."+canonicalName(name+"-x"); got != want {
						t.Fatalf("key of %q at 0 = %q, want %q", name+"-x", got, want)
					}
				}
			}
		}
	})
}

// Past the cache's bound, keys are still right.
func TestH1HeaderKeyManyNames(t *testing.T) {
	d := New(Options{})
	for n := 0; n < 700; n++ {
		name := fmt.Sprintf("x-name-%d", n)
		for _, i := range []int{0, 0, n % 20} {
			if got, want := d.h1HeaderKey(n%2 == 0, i, name), "header."+canonicalName(name); got != want {
				t.Fatalf("key of %q at %d = %q, want %q", name, i, got, want)
			}
		}
	}
	if len(d.keys) != 512 {
		t.Errorf("%d names cached, want 512", len(d.keys))
	}
}
