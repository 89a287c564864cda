package bashmod

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Event kinds and fields.
const (
	KindCommand     = "command"
	KindCommandExit = "command_exit"
	FieldStatus     = "status"
	// FieldTruncated is "true" on an event whose line was longer than the
	// kernel copies (lineMax - 1 bytes).
	FieldTruncated = "truncated"
)

// Values of ecap_hdr.kind and .flags in kern/bash_kern.c.
const (
	kindCommand     = 1
	kindCommandExit = 2

	flagTruncated   = 1 << 0
	flagStatusKnown = 1 << 1
)

// lineMax is BASH_LINE_MAX of kern/bash_kern.c.
const lineMax = 1024

// record is the Go twin of struct bash_event; TestLayout proves it. The
// decoder reads the fields at these offsets rather than copying the whole
// record.
type record struct {
	Hdr      ebpfbase.Header
	Status   int32
	Reserved uint32
	Line     [lineMax]byte
}

const (
	offStatus = ebpfbase.HeaderSize // unsafe.Offsetof(record{}.Status)
	offLine   = offStatus + 8       // unsafe.Offsetof(record{}.Line)
)

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, length out of range).
var ErrBadRecord = errors.New("bad bash record")

// Decode decodes a struct bash_event into ev. It never panics: a short or
// inconsistent record is an error wrapping ebpfbase.ErrShortRecord or
// ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return err
	}
	if len(raw) < offLine {
		return fmt.Errorf("decoding bash record: %d bytes, want at least %d: %w", len(raw), offLine, ebpfbase.ErrShortRecord)
	}
	if h.Len >= lineMax {
		return fmt.Errorf("decoding bash record: line length %d, at most %d: %w", h.Len, lineMax-1, ErrBadRecord)
	}
	end := offLine + int(h.Len)
	if len(raw) < end {
		// Perf records may carry trailing padding, never less than that.
		return fmt.Errorf("decoding bash record: %d bytes, line needs %d: %w", len(raw), end, ebpfbase.ErrShortRecord)
	}
	switch h.Kind {
	case kindCommand:
		ev.Kind = KindCommand
	case kindCommandExit:
		ev.Kind = KindCommandExit
	default:
		return fmt.Errorf("decoding bash record: unknown kind %d: %w", h.Kind, ErrBadRecord)
	}
	m.stamp.FillEvent(&h, ev)
	line := raw[offLine:end]
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	ev.Payload = append(ev.Payload[:0], line...)
	ev.Route = sdk.RouteOutput
	if h.Kind == kindCommandExit && h.Flags&flagStatusKnown != 0 {
		ev.AddField(FieldStatus, ebpfbase.StatusString(int32(binary.NativeEndian.Uint32(raw[offStatus:]))))
	}
	if h.Flags&flagTruncated != 0 {
		ev.AddField(FieldTruncated, "true")
	}
	return nil
}
