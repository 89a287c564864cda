package stream

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	egress  = sdk.DirectionEgress
	ingress = sdk.DirectionIngress
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// rec is a record of connection id as the OpenSSL module would send it.
func rec(id uint64, dir sdk.Direction, payload []byte) *sdk.Event {
	return &sdk.Event{
		Time:    t0,
		Module:  "openssl",
		Kind:    "tls_data",
		PID:     4242,
		TID:     4243,
		UID:     1000,
		Comm:    "curl",
		Payload: payload,
		Conn: sdk.Connection{
			ID:        id,
			Direction: dir,
		},
		Route: sdk.RouteStream,
	}
}

// collector keeps copies of emitted events.
type collector struct{ evs []*sdk.Event }

func (c *collector) emit(ev *sdk.Event) { c.evs = append(c.evs, ev.Clone()) }

// part is one direction's bytes, fed as records of at most split bytes
// (0: one record).
type part struct {
	dir  sdk.Direction
	data string
}

func feedParts(d *Decoder, id uint64, parts []part, split int, emit func(*sdk.Event)) {
	for _, p := range parts {
		feedSplit(d, id, p.dir, []byte(p.data), split, emit)
	}
}

func feedSplit(d *Decoder, id uint64, dir sdk.Direction, data []byte, split int, emit func(*sdk.Event)) {
	if split <= 0 {
		split = len(data)
	}
	for len(data) > 0 {
		n := min(split, len(data))
		// A fresh copy per record: the decoder must not keep ev.Payload.
		buf := append([]byte(nil), data[:n]...)
		d.Feed(rec(id, dir, buf), emit)
		clear(buf)
		data = data[n:]
	}
}

// render prints an event for comparison and golden files.
func render(ev *sdk.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: %s\ndirection: %s\nconn: %d\n", ev.Kind, ev.Conn.Direction, ev.Conn.ID)
	for _, f := range ev.Fields {
		fmt.Fprintf(&b, "field %s=%q\n", f.Key, f.Value)
	}
	// CR is shown as \r, so that golden files survive editors and git.
	fmt.Fprintf(&b, "payload (%d bytes):\n%s", len(ev.Payload), bytes.ReplaceAll(ev.Payload, []byte("\r"), []byte(`\r`)))
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// fieldValues returns every value of key.
func fieldValues(ev *sdk.Event, key string) []string {
	var vs []string
	for _, f := range ev.Fields {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func zlibbed(s string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func deflated(s string) string {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// chunked frames body as chunks of at most n bytes, with trailer lines.
func chunked(body string, n int, trailer string) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n" + trailer + "\r\n")
	return b.String()
}

// footprint is the memory the decoder holds for connections, for the
// bounds checked by the fuzz target.
func (d *Decoder) footprint() int {
	n := 0
	for _, c := range d.conns {
		n += c.heldBytes
		if c.h1 != nil {
			for _, s := range c.h1.dirs {
				n += len(s.msg) + len(s.line)
			}
		}
		if c.h2 != nil {
			for _, s := range c.h2.dirs {
				n += len(s.buf) + s.stored
			}
		}
	}
	return n
}
