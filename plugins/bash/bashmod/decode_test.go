package bashmod

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// rawRecord builds a bash_event record as the kernel sends it: the fixed
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
	copy(raw[32:48], "bash")
	bo.PutUint32(raw[offStatus:], uint32(status))
	copy(raw[offLine:], line)
	return raw
}

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
		{name: "command with trailing newline", raw: rawRecord(kindCommand, 0, 0, "ls\n"), wantKind: KindCommand, wantLine: "ls"},
		{name: "truncated command", raw: rawRecord(kindCommand, flagTruncated, 0, "yes"), wantKind: KindCommand, wantLine: "yes",
			wantFields: map[string]string{FieldTruncated: "true"}},
		{name: "exit status 1", raw: rawRecord(kindCommandExit, flagStatusKnown, 1, "false"), wantKind: KindCommandExit, wantLine: "false",
			wantFields: map[string]string{FieldStatus: "1"}},
		{name: "exit status 130", raw: rawRecord(kindCommandExit, flagStatusKnown, 130, "sleep 9"), wantKind: KindCommandExit, wantLine: "sleep 9",
			wantFields: map[string]string{FieldStatus: "130"}},
		{name: "exit status out of byte range", raw: rawRecord(kindCommandExit, flagStatusKnown, -1, "x"), wantKind: KindCommandExit, wantLine: "x",
			wantFields: map[string]string{FieldStatus: "-1"}},
		{name: "perf padding after the line", raw: append(rawRecord(kindCommand, 0, 0, "pwd"), 0, 0, 0, 0, 0), wantKind: KindCommand, wantLine: "pwd"},
		{name: "empty", raw: nil, wantErr: ebpfbase.ErrShortRecord},
		{name: "header only", raw: rawRecord(kindCommand, 0, 0, "")[:ebpfbase.HeaderSize], wantErr: ebpfbase.ErrShortRecord},
		{name: "line shorter than announced", raw: lying, wantErr: ebpfbase.ErrShortRecord},
		{name: "length beyond the kernel's maximum", raw: tooLong, wantErr: ErrBadRecord},
		{name: "unknown kind", raw: rawRecord(7, 0, 0, "x"), wantErr: ErrBadRecord},
	}
	m := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev sdk.Event
			err := m.Decode("", tt.raw, &ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != tt.wantKind || string(ev.Payload) != tt.wantLine || ev.Route != sdk.RouteOutput {
				t.Errorf("kind %q line %q route %v, want %q %q output", ev.Kind, ev.Payload, ev.Route, tt.wantKind, tt.wantLine)
			}
			if ev.PID != 4242 || ev.TID != 4243 || ev.UID != 1000 || ev.Comm != "bash" || ev.Time.IsZero() {
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
	m := New()
	raw := rawRecord(kindCommandExit, flagStatusKnown, 1, strings.Repeat("x", 200))
	var ev sdk.Event
	_ = m.Decode("", raw, &ev)
	if n := testing.AllocsPerRun(1000, func() { ev.Reset(); _ = m.Decode("", raw, &ev) }); n != 0 {
		t.Errorf("Decode allocates %v times per record, want 0", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(kindCommand, 0, 0, "echo hi"))
	f.Add(rawRecord(kindCommandExit, flagStatusKnown|flagTruncated, 2, "ls /nope"))
	f.Add([]byte{})
	f.Add(make([]byte, offLine))
	m := New()
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		h, _ := ebpfbase.DecodeHeader(raw)
		if len(ev.Payload) > int(h.Len) || len(raw) < offLine+int(h.Len) {
			t.Fatalf("accepted a record whose line does not fit: len %d, raw %d", h.Len, len(raw))
		}
	})
}
