package shellrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Event kinds and fields.
const (
	// KindCommand is a line the shell read; KindCommandExit the same line
	// once the shell has run it, with FieldStatus.
	KindCommand     = "command"
	KindCommandExit = "command_exit"
	// FieldStatus is the command's exit status in decimal ($?), on a
	// KindCommandExit event when the kernel could read it.
	FieldStatus = "status"
	// FieldTruncated is "true" on an event whose line was longer than the
	// kernel copies (SHELL_LINE_MAX - 1 bytes).
	FieldTruncated = "truncated"
)

// Values of ecap_hdr.kind and .flags in kern/include/shellrec.h.
const (
	kindCommand     = 1
	kindCommandExit = 2

	flagTruncated   = 1 << 0
	flagStatusKnown = 1 << 1
)

// Offsets in struct shell_event: the status follows the common header,
// the line follows the status and a reserved word.
const (
	offStatus = ebpfbase.HeaderSize
	offLine   = offStatus + 8
)

// Record returns the zero value of the Go twin of struct shell_event
// whose line holds lineMax bytes, for ebpfbase.CheckLayout: a module's
// test proves that its object's records have the layout Decode reads.
func Record(lineMax int) any {
	t := reflect.StructOf([]reflect.StructField{
		{Name: "Hdr", Type: reflect.TypeFor[ebpfbase.Header]()},
		{Name: "Status", Type: reflect.TypeFor[int32]()},
		{Name: "Reserved", Type: reflect.TypeFor[uint32]()},
		{Name: "Line", Type: reflect.ArrayOf(lineMax, reflect.TypeFor[byte]())},
	})
	return reflect.Zero(t).Interface()
}

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, length out of range).
var ErrBadRecord = errors.New("bad shell record")

// Decoder decodes the records of one shell's program. Its zero value is
// not ready: set Shell and LineMax. Like a module's Decode, it is not safe
// for concurrent use.
type Decoder struct {
	// Shell names the shell in errors ("decoding bash record: ...").
	Shell string
	// LineMax is SHELL_LINE_MAX of the shell's program: a record's line
	// holds at most LineMax - 1 bytes.
	LineMax int

	stamp ebpfbase.Stamper
}

// Decode decodes a struct shell_event into ev, without allocating once
// the command names are known. It never panics: a short or inconsistent
// record is an error wrapping ebpfbase.ErrShortRecord or ErrBadRecord.
func (d *Decoder) Decode(raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return err
	}
	if len(raw) < offLine {
		return fmt.Errorf("decoding %s record: %d bytes, want at least %d: %w", d.Shell, len(raw), offLine, ebpfbase.ErrShortRecord)
	}
	if h.Len == 0 || int64(h.Len) >= int64(d.LineMax) {
		return fmt.Errorf("decoding %s record: line length %d, want 1 to %d: %w", d.Shell, h.Len, d.LineMax-1, ErrBadRecord)
	}
	end := offLine + int(h.Len)
	if len(raw) < end {
		// Perf records may carry trailing padding, never less than that.
		return fmt.Errorf("decoding %s record: %d bytes, line needs %d: %w", d.Shell, len(raw), end, ebpfbase.ErrShortRecord)
	}
	switch h.Kind {
	case kindCommand:
		ev.Kind = KindCommand
	case kindCommandExit:
		ev.Kind = KindCommandExit
	default:
		return fmt.Errorf("decoding %s record: unknown kind %d: %w", d.Shell, h.Kind, ErrBadRecord)
	}
	d.stamp.FillEvent(&h, ev)
	ev.Payload = append(ev.Payload[:0], raw[offLine:end]...)
	ev.Route = sdk.RouteOutput
	if h.Kind == kindCommandExit && h.Flags&flagStatusKnown != 0 {
		ev.AddField(FieldStatus, statusString(int32(binary.NativeEndian.Uint32(raw[offStatus:]))))
	}
	if h.Flags&flagTruncated != 0 {
		ev.AddField(FieldTruncated, "true")
	}
	return nil
}
