package mysqldmod

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

const (
	testPID = 4242
	testTID = 4243
)

func putHeader(raw []byte, kind, length, flags uint32, ts uint64) {
	bo := binary.NativeEndian
	bo.PutUint64(raw[0:], ts)
	bo.PutUint32(raw[8:], testPID)
	bo.PutUint32(raw[12:], testTID)
	bo.PutUint32(raw[16:], 27)
	bo.PutUint32(raw[20:], kind)
	bo.PutUint32(raw[24:], length)
	bo.PutUint32(raw[28:], flags)
	copy(raw[32:48], "mariadbd")
}

// textChunk builds a struct mysqld_text record.
func textChunk(start uint64, part uint32, total, off uint64, data string) []byte {
	raw := make([]byte, offTextData+len(data))
	putHeader(raw, kindText, uint32(len(data)), 0, start)
	bo := binary.NativeEndian
	bo.PutUint64(raw[offTextStart:], start)
	bo.PutUint64(raw[offTextTotal:], total)
	bo.PutUint64(raw[offTextOff:], off)
	bo.PutUint32(raw[offTextPart:], part)
	copy(raw[offTextData:], data)
	return raw
}

// done describes a struct mysqld_done record.
type done struct {
	start, end, thread, affected, textLen, prepLen uint64
	sent                                           uint64
	command, stmtID, daStatus, errno, warnings     uint32
	flags                                          uint32
	sqlstate, message                              string
}

func (d done) raw() []byte {
	raw := make([]byte, offDoneMessage+len(d.message))
	putHeader(raw, kindDone, uint32(len(d.message)), d.flags, d.end)
	bo := binary.NativeEndian
	bo.PutUint64(raw[offDoneStart:], d.start)
	bo.PutUint64(raw[offDoneThread:], d.thread)
	bo.PutUint64(raw[offDoneAffected:], d.affected)
	bo.PutUint64(raw[offDoneTextLen:], d.textLen)
	bo.PutUint64(raw[offDonePrepLen:], d.prepLen)
	bo.PutUint64(raw[offDoneSent:], d.sent)
	bo.PutUint32(raw[offDoneCommand:], d.command)
	bo.PutUint32(raw[offDoneStmtID:], d.stmtID)
	bo.PutUint32(raw[offDoneDAStatus:], d.daStatus)
	bo.PutUint32(raw[offDoneErrno:], d.errno)
	bo.PutUint32(raw[offDoneWarnings:], d.warnings)
	copy(raw[offDoneSQLState:], d.sqlstate)
	copy(raw[offDoneMessage:], d.message)
	return raw
}

// feed decodes records in order and returns the events routed out.
func feed(t *testing.T, m *Module, records ...[]byte) ([]*sdk.Event, error) {
	t.Helper()
	var out []*sdk.Event
	var ev sdk.Event
	for _, r := range records {
		ev.Reset()
		if err := m.Decode("", r, &ev); err != nil {
			return out, err
		}
		if ev.Route == sdk.RouteOutput {
			out = append(out, ev.Clone())
		}
	}
	return out, nil
}

func TestDecode(t *testing.T) {
	const da = flagDA | flagThreadID
	long := strings.Repeat("x", chunkMax) + "tail"
	tests := []struct {
		name        string
		records     [][]byte
		wantKind    string
		wantPayload string
		wantConn    uint64
		wantFields  map[string]string
		noFields    []string
	}{
		{
			name:     "query ok",
			records:  [][]byte{textChunk(1000, 0, 8, 0, "SELECT 1"), done{start: 1000, end: 51000, thread: 7, textLen: 8, command: comQuery, daStatus: daEOF, flags: da}.raw()},
			wantKind: KindQuery, wantPayload: "SELECT 1", wantConn: 7,
			wantFields: map[string]string{FieldDuration: "50", FieldStatus: "ok"},
			noFields:   []string{FieldAffectedRows, FieldErrorCode, FieldTruncated},
		},
		{
			name: "select with rows sent",
			records: [][]byte{textChunk(1, 0, 6, 0, "SELECT"), done{start: 1, end: 2, thread: 9, textLen: 6, command: comQuery, daStatus: daEOF,
				sent: 2, flags: da | flagRows}.raw()},
			wantKind: KindQuery, wantPayload: "SELECT", wantConn: 9,
			wantFields: map[string]string{FieldStatus: "ok", FieldRowsSent: "2"},
			noFields:   []string{FieldAffectedRows},
		},
		{
			name: "update: no result set, no rows sent",
			records: [][]byte{textChunk(1, 0, 6, 0, "UPDATE"), done{start: 1, end: 2, textLen: 6, command: comQuery, daStatus: daOK,
				affected: 1, flags: da | flagRows}.raw()},
			wantKind: KindQuery, wantPayload: "UPDATE",
			wantFields: map[string]string{FieldAffectedRows: "1"},
			noFields:   []string{FieldRowsSent},
		},
		{
			name:     "insert with affected rows and warnings",
			records:  [][]byte{textChunk(1, 0, 6, 0, "INSERT"), done{start: 1, end: 2, thread: 9, textLen: 6, command: comQuery, daStatus: daOK, affected: 3, warnings: 2, flags: da}.raw()},
			wantKind: KindQuery, wantPayload: "INSERT", wantConn: 9,
			wantFields: map[string]string{FieldStatus: "ok", FieldAffectedRows: "3", FieldWarnings: "2", FieldDuration: "0"},
		},
		{
			name: "syntax error",
			records: [][]byte{textChunk(5, 0, 7, 0, "SELEC 1"), done{start: 5, end: 6, thread: 3, textLen: 7, command: comQuery, daStatus: daError,
				errno: 1064, sqlstate: "42000", message: "You have an error in your SQL syntax", flags: da | flagMessage}.raw()},
			wantKind: KindQuery, wantPayload: "SELEC 1", wantConn: 3,
			wantFields: map[string]string{FieldStatus: "error", FieldErrorCode: "1064", FieldSQLState: "42000", FieldError: "You have an error in your SQL syntax"},
			noFields:   []string{FieldAffectedRows},
		},
		{
			name:     "text in two chunks",
			records:  [][]byte{textChunk(8, 0, uint64(len(long)), 0, long[:chunkMax]), textChunk(8, 0, uint64(len(long)), chunkMax, long[chunkMax:]), done{start: 8, end: 9, textLen: uint64(len(long)), command: comQuery, flags: da}.raw()},
			wantKind: KindQuery, wantPayload: long,
			noFields: []string{FieldTruncated, FieldStatus},
		},
		{
			name:     "chunk lost in the kernel",
			records:  [][]byte{textChunk(8, 0, uint64(len(long)), 0, long[:chunkMax]), done{start: 8, end: 9, textLen: uint64(len(long)), command: comQuery, flags: da | flagTextLost}.raw()},
			wantKind: KindQuery, wantPayload: long[:chunkMax],
			wantFields: map[string]string{FieldTruncated: "true"},
		},
		{
			name:     "chunk out of order",
			records:  [][]byte{textChunk(8, 0, uint64(len(long)), chunkMax, long[chunkMax:]), done{start: 8, end: 9, textLen: uint64(len(long)), command: comQuery, flags: da}.raw()},
			wantKind: KindQuery, wantPayload: "",
			wantFields: map[string]string{FieldTruncated: "true"},
		},
		{
			name: "binary execute carries the prepared text",
			records: [][]byte{textChunk(20, 1, 12, 0, "SELECT ? * 2"), done{start: 20, end: 30, thread: 4, prepLen: 12, command: comStmtExecute, stmtID: 1,
				daStatus: daEOF, flags: da | flagPrepared}.raw()},
			wantKind: KindStmtExecute, wantPayload: "SELECT ? * 2", wantConn: 4,
			wantFields: map[string]string{FieldStmtID: "1", FieldStatus: "ok"},
			noFields:   []string{FieldPrepared},
		},
		{
			name: "SQL EXECUTE carries the prepared text as a field",
			records: [][]byte{textChunk(20, 0, 9, 0, "EXECUTE s"), textChunk(20, 1, 12, 0, "SELECT ? + 1"), done{start: 20, end: 30, thread: 4, textLen: 9, prepLen: 12, command: comQuery,
				daStatus: daEOF, flags: da | flagPrepared}.raw()},
			wantKind: KindQuery, wantPayload: "EXECUTE s", wantConn: 4,
			wantFields: map[string]string{FieldPrepared: "SELECT ? + 1"},
			noFields:   []string{FieldStmtID},
		},
		{
			name:     "prepare: the command replied itself",
			records:  [][]byte{textChunk(1, 0, 8, 0, "SELECT ?"), done{start: 1, end: 2, textLen: 8, command: comStmtPrepare, daStatus: daDisabled, flags: da}.raw()},
			wantKind: KindStmtPrepare, wantPayload: "SELECT ?",
			wantFields: map[string]string{FieldStatus: "ok"},
		},
		{
			name:     "quit: no reply, no text",
			records:  [][]byte{done{start: 1, end: 2, command: 1, daStatus: daEmpty, flags: da}.raw()},
			wantKind: "quit",
			noFields: []string{FieldStatus, FieldTruncated},
		},
		{
			name:     "Diagnostics_area not read",
			records:  [][]byte{done{start: 1, end: 2, command: 14, daStatus: daError, errno: 1}.raw()},
			wantKind: "ping",
			noFields: []string{FieldStatus, FieldErrorCode},
		},
		{
			name:     "unnamed command",
			records:  [][]byte{done{start: 1, end: 2, command: 99}.raw()},
			wantKind: "command_99",
		},
		{
			name:     "end without its text: the chunk was lost",
			records:  [][]byte{done{start: 1, end: 2, textLen: 8, command: comQuery}.raw()},
			wantKind: KindQuery, wantFields: map[string]string{FieldTruncated: "true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			evs, err := feed(t, m, tt.records...)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %s", len(evs), harness.Describe(evs))
			}
			ev := evs[0]
			if ev.Kind != tt.wantKind || string(ev.Payload) != tt.wantPayload || ev.Conn.ID != tt.wantConn {
				t.Errorf("kind %q payload %.40q conn %d, want %q %.40q %d", ev.Kind, ev.Payload, ev.Conn.ID, tt.wantKind, tt.wantPayload, tt.wantConn)
			}
			if ev.PID != testPID || ev.TID != testTID || ev.UID != 27 || ev.Comm != "mariadbd" || ev.Time.IsZero() {
				t.Errorf("header fields %+v", ev)
			}
			for k, v := range tt.wantFields {
				if got, ok := ev.Field(k); !ok || got != v {
					t.Errorf("field %s = %q (present %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.noFields {
				if v, ok := ev.Field(k); ok {
					t.Errorf("field %s = %q, want none", k, v)
				}
			}
			if len(m.dec.calls) != 0 {
				t.Errorf("%d calls still pending", len(m.dec.calls))
			}
		})
	}
}

// TestDecodeOrphans: a call whose end never came is dropped, counted,
// when its thread's next call begins; its text does not leak into the
// next event.
func TestDecodeOrphans(t *testing.T) {
	m := New()
	evs, err := feed(t, m,
		textChunk(1, 0, 5, 0, "FIRST"),
		textChunk(2, 0, 6, 0, "SECOND"),
		done{start: 2, end: 3, textLen: 6, command: comQuery}.raw())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || string(evs[0].Payload) != "SECOND" || m.dec.orphans != 1 {
		t.Errorf("events %s, orphans %d; want SECOND and 1", harness.Describe(evs), m.dec.orphans)
	}
	// Bounded: one pending call per thread, at most maxPending threads.
	var ev sdk.Event
	for i := range maxPending + 10 {
		r := textChunk(uint64(i), 0, 1, 0, "x")
		binary.NativeEndian.PutUint32(r[12:], uint32(i))
		ev.Reset()
		if err := m.Decode("", r, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.dec.calls) > maxPending {
		t.Errorf("%d pending calls, at most %d", len(m.dec.calls), maxPending)
	}
}

func TestDecodeErrors(t *testing.T) {
	ok := textChunk(1, 0, 3, 0, "abc")
	lying := textChunk(1, 0, 3, 0, "abc")[:offTextData+1]
	past := textChunk(1, 0, 3, 2, "abc")
	part := textChunk(1, 2, 3, 0, "abc")
	huge := textChunk(1, 0, textMax+1, 0, "abc")
	empty := textChunk(1, 0, 3, 0, "")
	badMsg := done{start: 1, message: "x"}.raw()
	binary.NativeEndian.PutUint32(badMsg[24:], msgMax)
	shortMsg := done{start: 1, message: "xyz"}.raw()
	shortMsg = shortMsg[:len(shortMsg)-1]
	hugeText := done{start: 1, textLen: textMax + 1}.raw()
	unknown := textChunk(1, 0, 3, 0, "abc")
	binary.NativeEndian.PutUint32(unknown[20:], 9)
	for _, tt := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ebpfbase.ErrShortRecord},
		{"text header only", ok[:offTextData-1], ebpfbase.ErrShortRecord},
		{"text shorter than its length", lying, ebpfbase.ErrShortRecord},
		{"chunk past the total", past, ErrBadRecord},
		{"unknown part", part, ErrBadRecord},
		{"total past the maximum", huge, ErrBadRecord},
		{"empty chunk", empty, ErrBadRecord},
		{"done short", done{}.raw()[:offDoneMessage-1], ebpfbase.ErrShortRecord},
		{"message too long", badMsg, ErrBadRecord},
		{"message shorter than its length", shortMsg, ebpfbase.ErrShortRecord},
		{"text length past the maximum", hugeText, ErrBadRecord},
		{"unknown kind", unknown, ErrBadRecord},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ev sdk.Event
			if err := New().Decode("", tt.raw, &ev); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDecodeAllocations: a query's chunk and end cost one allocation, the
// string holding the numbers of the fields.
func TestDecodeAllocations(t *testing.T) {
	m := New()
	text := textChunk(1, 0, 200, 0, strings.Repeat("s", 200))
	end := done{start: 1, end: 2000, thread: 12345, textLen: 200, command: comQuery, daStatus: daOK, affected: 1000, flags: flagDA | flagThreadID}.raw()
	var ev sdk.Event
	run := func() {
		ev.Reset()
		_ = m.Decode("", text, &ev)
		ev.Reset()
		_ = m.Decode("", end, &ev)
	}
	run()
	if n := testing.AllocsPerRun(1000, run); n > 1 {
		t.Errorf("%v allocations per statement, want at most 1", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(textChunk(1, 0, 8, 0, "SELECT 1"))
	f.Add(textChunk(1, 1, 8, 4, "T 1"))
	f.Add(done{start: 1, end: 2, textLen: 8, command: comQuery, daStatus: daError, errno: 1064, sqlstate: "42000", message: "syntax", flags: flagDA | flagMessage}.raw())
	f.Add([]byte{})
	m := New()
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		if len(ev.Payload) > textMax {
			t.Fatalf("payload of %d bytes, at most %d", len(ev.Payload), textMax)
		}
		if len(m.dec.calls) > maxPending {
			t.Fatalf("%d pending calls", len(m.dec.calls))
		}
	})
}
