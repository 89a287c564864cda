package shellrec

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// rawRecord builds a shell_event record as the kernel sends it: the fixed
// fields and len(line) bytes of line.
func rawRecord(kind, flags uint32, status int32, line string) []byte {
	raw := make([]byte, offLine+len(line))
	bo := binary.NativeEndian
	bo.PutUint64(raw[0:], 123456789)
	bo.PutUint32(raw[8:], 4242)
	bo.PutUint32(raw[12:], 4243)
	bo.PutUint32(raw[16:], 1000)
	bo.PutUint32(raw[20:], kind)
	bo.PutUint32(raw[24:], uint32(len(line)))
	bo.PutUint32(raw[28:], flags)
	copy(raw[32:48], "zsh")
	bo.PutUint32(raw[offStatus:], uint32(status))
	copy(raw[offLine:], line)
	return raw
}

const lineMax = 1024

func TestDecode(t *testing.T) {
	tooLong := rawRecord(kindCommand, 0, 0, "x")
	binary.NativeEndian.PutUint32(tooLong[24:], lineMax)
	lying := rawRecord(kindCommand, 0, 0, "abc")
	binary.NativeEndian.PutUint32(lying[24:], 10)
	tests := []struct {
		name       string
		raw        []byte
		wantKind   string
		wantLine   string
		wantFields map[string]string
		wantErr    error
	}{
		{name: "command", raw: rawRecord(kindCommand, 0, 0, "echo hi"), wantKind: KindCommand, wantLine: "echo hi"},
		{name: "multi-line command", raw: rawRecord(kindCommand, 0, 0, "for i in 1 2\ndo echo $i\ndone"), wantKind: KindCommand,
			wantLine: "for i in 1 2\ndo echo $i\ndone"},
		{name: "longest line", raw: rawRecord(kindCommand, 0, 0, strings.Repeat("y", lineMax-1)), wantKind: KindCommand,
			wantLine: strings.Repeat("y", lineMax-1)},
		{name: "truncated command", raw: rawRecord(kindCommand, flagTruncated, 0, "yes"), wantKind: KindCommand, wantLine: "yes",
			wantFields: map[string]string{FieldTruncated: "true"}},
		{name: "exit status 1", raw: rawRecord(kindCommandExit, flagStatusKnown, 1, "false"), wantKind: KindCommandExit, wantLine: "false",
			wantFields: map[string]string{FieldStatus: "1"}},
		{name: "exit status 130", raw: rawRecord(kindCommandExit, flagStatusKnown, 130, "sleep 9"), wantKind: KindCommandExit, wantLine: "sleep 9",
			wantFields: map[string]string{FieldStatus: "130"}},
		{name: "exit status above a byte", raw: rawRecord(kindCommandExit, flagStatusKnown, 300, "x"), wantKind: KindCommandExit, wantLine: "x",
			wantFields: map[string]string{FieldStatus: "300"}},
		{name: "negative exit status", raw: rawRecord(kindCommandExit, flagStatusKnown, -1, "x"), wantKind: KindCommandExit, wantLine: "x",
			wantFields: map[string]string{FieldStatus: "-1"}},
		{name: "exit without status", raw: rawRecord(kindCommandExit, 0, 5, "x"), wantKind: KindCommandExit, wantLine: "x"},
		{name: "status on a command record ignored", raw: rawRecord(kindCommand, flagStatusKnown, 5, "x"), wantKind: KindCommand, wantLine: "x"},
		{name: "perf padding after the line", raw: append(rawRecord(kindCommand, 0, 0, "pwd"), 0, 0, 0, 0, 0), wantKind: KindCommand, wantLine: "pwd"},
		{name: "empty", raw: nil, wantErr: ebpfbase.ErrShortRecord},
		{name: "header only", raw: rawRecord(kindCommand, 0, 0, "x")[:ebpfbase.HeaderSize], wantErr: ebpfbase.ErrShortRecord},
		{name: "empty line", raw: rawRecord(kindCommand, 0, 0, ""), wantErr: ErrBadRecord},
		{name: "line shorter than announced", raw: lying, wantErr: ebpfbase.ErrShortRecord},
		{name: "length beyond the kernel's maximum", raw: tooLong, wantErr: ErrBadRecord},
		{name: "unknown kind", raw: rawRecord(7, 0, 0, "x"), wantErr: ErrBadRecord},
	}
	d := &Decoder{Shell: "zsh", LineMax: lineMax}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev sdk.Event
			err := d.Decode(tt.raw, &ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "zsh") && errors.Is(err, ErrBadRecord) {
					t.Errorf("error %q does not name the shell", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != tt.wantKind || string(ev.Payload) != tt.wantLine || ev.Route != sdk.RouteOutput {
				t.Errorf("kind %q line %q route %v, want %q %q output", ev.Kind, ev.Payload, ev.Route, tt.wantKind, tt.wantLine)
			}
			if ev.PID != 4242 || ev.TID != 4243 || ev.UID != 1000 || ev.Comm != "zsh" || ev.Time.IsZero() {
				t.Errorf("header fields %+v", ev)
			}
			if len(ev.Fields) != len(tt.wantFields) {
				t.Errorf("fields %v, want %v", ev.Fields, tt.wantFields)
			}
			for k, v := range tt.wantFields {
				if got, _ := ev.Field(k); got != v {
					t.Errorf("field %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	d := &Decoder{Shell: "bash", LineMax: lineMax}
	raw := rawRecord(kindCommandExit, flagStatusKnown, 1, strings.Repeat("x", 200))
	if n := harness.DecodeAllocs(t, func(raw []byte, ev *sdk.Event) error { return d.Decode(raw, ev) }, raw); n != 0 {
		t.Errorf("Decode allocates %v times per record, want 0", n)
	}
}

// TestRecordOffsets: the twin Record returns has the fields where Decode
// reads them (the modules' layout tests compare it with their objects).
func TestRecordOffsets(t *testing.T) {
	for _, max := range []int{1024, 4096} {
		r := Record(max)
		rt := reflect.TypeOf(r)
		if f, _ := rt.FieldByName("Status"); f.Offset != offStatus {
			t.Errorf("Record(%d).Status at %d, want %d", max, f.Offset, offStatus)
		}
		if f, _ := rt.FieldByName("Line"); f.Offset != offLine || f.Type.Len() != max {
			t.Errorf("Record(%d).Line at %d of %d bytes, want %d of %d", max, f.Offset, f.Type.Len(), offLine, max)
		}
		if rt.Size() != uintptr(offLine+max) {
			t.Errorf("Record(%d) is %d bytes, want %d", max, rt.Size(), offLine+max)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(kindCommand, 0, 0, "echo hi"))
	f.Add(rawRecord(kindCommandExit, flagStatusKnown|flagTruncated, 2, "ls /nope"))
	f.Add([]byte{})
	f.Add(make([]byte, offLine))
	d := &Decoder{Shell: "bash", LineMax: lineMax}
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := d.Decode(raw, &ev); err != nil {
			return
		}
		h, _ := ebpfbase.DecodeHeader(raw)
		if len(ev.Payload) != int(h.Len) || h.Len == 0 || h.Len >= lineMax || len(raw) < offLine+int(h.Len) {
			t.Fatalf("accepted a record whose line does not fit: len %d, raw %d, payload %d", h.Len, len(raw), len(ev.Payload))
		}
	})
}
