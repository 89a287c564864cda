package config

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// maxSnippetLines is how many source lines a snippet shows at most.
const maxSnippetLines = 3

// WriteDiagnostics writes diags for people, in order. Each begins with the
// line
//
//	FILE:LINE:COL: error: Summary; Detail
//
// ("warning" for warnings; no position when the diagnostic has no
// subject, no "; Detail" when it has no detail), which editors and tests
// may match. When sources holds the text of FILE, the source lines of the
// subject follow, each with a line of '^' under the subject.
func WriteDiagnostics(w io.Writer, sources map[string][]byte, diags hcl.Diagnostics) error {
	var buf []byte
	for _, d := range diags {
		buf = appendDiagnostic(buf[:0], sources, d)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func appendDiagnostic(buf []byte, sources map[string][]byte, d *hcl.Diagnostic) []byte {
	if d.Subject != nil {
		buf = append(buf, d.Subject.Filename...)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(d.Subject.Start.Line), 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(d.Subject.Start.Column), 10)
		buf = append(buf, ": "...)
	}
	if d.Severity == hcl.DiagWarning {
		buf = append(buf, "warning: "...)
	} else {
		buf = append(buf, "error: "...)
	}
	buf = append(buf, oneLine(d.Summary)...)
	if d.Detail != "" {
		buf = append(buf, "; "...)
		buf = append(buf, oneLine(d.Detail)...)
	}
	buf = append(buf, '\n')
	if d.Subject != nil {
		buf = appendSnippet(buf, sources[d.Subject.Filename], *d.Subject)
	}
	return buf
}

// oneLine keeps the first line of a diagnostic on one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// appendSnippet appends the lines of src that r covers, with markers. It
// appends nothing when r does not fit src.
func appendSnippet(buf, src []byte, r hcl.Range) []byte {
	start, end := r.Start.Byte, r.End.Byte
	if src == nil || start < 0 || end < start || end > len(src) || r.Start.Line < 1 {
		return buf
	}
	lastLine := r.End.Line
	if lastLine < r.Start.Line {
		lastLine = r.Start.Line
	}
	if lastLine-r.Start.Line >= maxSnippetLines {
		lastLine = r.Start.Line + maxSnippetLines - 1
	}
	width := len(strconv.Itoa(lastLine))

	lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
	for line := r.Start.Line; line <= lastLine && lineStart <= len(src); line++ {
		lineEnd := len(src)
		if i := bytes.IndexByte(src[lineStart:], '\n'); i >= 0 {
			lineEnd = lineStart + i
		}
		text := bytes.TrimRight(src[lineStart:lineEnd], "\r")

		buf = appendGutter(buf, strconv.Itoa(line), width)
		buf = append(buf, text...)
		buf = append(buf, '\n')

		// The marked part of this line, as byte offsets into text.
		from, to := 0, len(text)
		if line == r.Start.Line {
			from = min(start-lineStart, len(text))
		} else {
			from = len(text) - len(bytes.TrimLeft(text, " \t"))
		}
		if end <= lineStart+len(text) {
			to = max(end-lineStart, from)
		}
		buf = appendGutter(buf, "", width)
		for _, c := range string(text[:from]) {
			if c == '\t' {
				buf = append(buf, '\t')
			} else {
				buf = append(buf, ' ')
			}
		}
		n := max(utf8.RuneCount(text[from:to]), 1)
		for range n {
			buf = append(buf, '^')
		}
		buf = append(buf, '\n')
		lineStart = lineEnd + 1
	}
	return buf
}

func appendGutter(buf []byte, num string, width int) []byte {
	buf = append(buf, "  "...)
	for range width - len(num) {
		buf = append(buf, ' ')
	}
	buf = append(buf, num...)
	return append(buf, " | "...)
}
