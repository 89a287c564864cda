package pgmod

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// rawRecord builds a pg_event record as the kernel sends it.
func rawRecord(kind, flags, phase uint32, durationNs uint64, name, text, errBody string) []byte {
	raw := make([]byte, offData+len(text)+len(errBody))
	bo := binary.NativeEndian
	bo.PutUint64(raw[0:], 123456789)
	bo.PutUint32(raw[8:], 4242)
	bo.PutUint32(raw[12:], 4242)
	bo.PutUint32(raw[16:], 101)
	bo.PutUint32(raw[20:], kind)
	bo.PutUint32(raw[24:], uint32(len(text)))
	bo.PutUint32(raw[28:], flags)
	copy(raw[32:48], "postgres")
	bo.PutUint64(raw[offDuration:], durationNs)
	bo.PutUint32(raw[offPhase:], phase)
	bo.PutUint32(raw[offErrLen:], uint32(len(errBody)))
	copy(raw[offStmtName:offData], name)
	copy(raw[offData:], text)
	copy(raw[offData+len(text):], errBody)
	return raw
}

// rawChunk builds a pg_text record: a chunk of long text id.
func rawChunk(pid uint32, id uint64, off uint32, data string) []byte {
	raw := make([]byte, offChunkData+len(data))
	bo := binary.NativeEndian
	bo.PutUint64(raw[0:], 123456789)
	bo.PutUint32(raw[8:], pid)
	bo.PutUint32(raw[12:], pid)
	bo.PutUint32(raw[16:], 101)
	bo.PutUint32(raw[20:], recText)
	bo.PutUint32(raw[24:], uint32(len(data)))
	copy(raw[32:48], "postgres")
	bo.PutUint64(raw[offChunkID:], id)
	bo.PutUint32(raw[offChunkOffset:], off)
	copy(raw[offChunkData:], data)
	return raw
}

// chunkedRecord builds the statement record that follows the chunks of
// text id, n bytes long.
func chunkedRecord(flags uint32, id uint64, n uint32, errBody string) []byte {
	raw := rawRecord(recStatement, flags|flagChunked, phaseQuery, 1000, "", "", errBody)
	binary.NativeEndian.PutUint64(raw[offTextID:], id)
	binary.NativeEndian.PutUint32(raw[offTextLen:], n)
	return raw
}

// errorResponse is the body of an ErrorResponse as the server sends it.
const errorResponse = "SERROR\x00VERROR\x00C42601\x00Msyntax error at or near \"SELEC\"\x00P1\x00Fscan.l\x00L1176\x00Rscanner_yyerror\x00\x00"

func testModule() *Module {
	m := New()
	m.backends.title = func(pid uint32) []byte {
		if pid == 4242 {
			return []byte("postgres: 15/main: alice shop [local] SELECT\x00\x00")
		}
		return nil
	}
	return m
}

func TestDecode(t *testing.T) {
	tooLong := rawRecord(recStatement, 0, phaseQuery, 0, "", "x", "")
	binary.NativeEndian.PutUint32(tooLong[24:], textMax)
	lying := rawRecord(recStatement, 0, phaseQuery, 0, "", "SELECT 1", "")
	binary.NativeEndian.PutUint32(lying[offErrLen:], 20)
	tests := []struct {
		name       string
		raw        []byte
		wantKind   string
		wantText   string
		wantFields map[string]string
		wantErr    error
	}{
		{name: "query ok", raw: rawRecord(recStatement, 0, phaseQuery, 1234567, "", "SELECT 1", ""), wantKind: KindQuery, wantText: "SELECT 1",
			wantFields: map[string]string{FieldStatus: StatusOK, FieldDuration: "1234", FieldUser: "alice", FieldDatabase: "shop"}},
		{name: "execute of a named statement", raw: rawRecord(recStatement, 0, phaseExecute, 999, "P_1", "SELECT $1", ""), wantKind: KindExecute, wantText: "SELECT $1",
			wantFields: map[string]string{FieldStatus: StatusOK, FieldDuration: "0", FieldUser: "alice", FieldDatabase: "shop", FieldStatement: "P_1"}},
		{name: "query error", raw: rawRecord(recStatement, flagError, phaseQuery, 5000, "", "SELEC 1", errorResponse), wantKind: KindQuery, wantText: "SELEC 1",
			wantFields: map[string]string{FieldStatus: StatusError, FieldSQLState: "42601", FieldError: `syntax error at or near "SELEC"`,
				FieldDuration: "5", FieldUser: "alice", FieldDatabase: "shop"}},
		{name: "parse error cut short", raw: rawRecord(recStatement, flagError, phaseParse, 0, "", "SELEC", "SERROR\x00C42601\x00Msyntax err"), wantKind: KindParse, wantText: "SELEC",
			wantFields: map[string]string{FieldStatus: StatusError, FieldSQLState: "42601", FieldError: "syntax err", FieldDuration: "0", FieldUser: "alice", FieldDatabase: "shop"}},
		{name: "bind error without fields", raw: rawRecord(recStatement, flagError, phaseBind, 0, "", "SELECT $1", ""), wantKind: KindBind, wantText: "SELECT $1",
			wantFields: map[string]string{FieldStatus: StatusError, FieldDuration: "0", FieldUser: "alice", FieldDatabase: "shop"}},
		{name: "truncated", raw: rawRecord(recStatement, flagTruncated, phaseNone, 0, "", "SELECT", ""), wantKind: KindStatement, wantText: "SELECT",
			wantFields: map[string]string{FieldStatus: StatusOK, FieldDuration: "0", FieldUser: "alice", FieldDatabase: "shop", FieldTruncated: "true"}},
		{name: "perf padding", raw: append(rawRecord(recStatement, 0, phaseQuery, 0, "", "SELECT 1", ""), 0, 0, 0), wantKind: KindQuery, wantText: "SELECT 1",
			wantFields: map[string]string{FieldStatus: StatusOK, FieldDuration: "0", FieldUser: "alice", FieldDatabase: "shop"}},
		{name: "backend exit", raw: rawRecord(recBackendExit, 0, 0, 0, "", "", "")[:ebpfbase.HeaderSize], wantKind: kindBackendExit},
		{name: "empty", raw: nil, wantErr: ebpfbase.ErrShortRecord},
		{name: "header only", raw: rawRecord(recStatement, 0, phaseQuery, 0, "", "", "")[:ebpfbase.HeaderSize], wantErr: ebpfbase.ErrShortRecord},
		{name: "error shorter than announced", raw: lying, wantErr: ebpfbase.ErrShortRecord},
		{name: "text beyond the kernel's maximum", raw: tooLong, wantErr: ErrBadRecord},
		{name: "unknown phase", raw: rawRecord(recStatement, 0, 9, 0, "", "x", ""), wantErr: ErrBadRecord},
		{name: "unknown kind", raw: rawRecord(7, 0, 0, 0, "", "x", ""), wantErr: ErrBadRecord},
	}
	m := testModule()
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
			if ev.Kind != tt.wantKind || string(ev.Payload) != tt.wantText {
				t.Errorf("kind %q text %q, want %q %q", ev.Kind, ev.Payload, tt.wantKind, tt.wantText)
			}
			wantRoute := sdk.RouteOutput
			if tt.wantKind == kindBackendExit {
				wantRoute = sdk.RouteModule
			}
			if ev.Route != wantRoute || ev.PID != 4242 || ev.UID != 101 || ev.Comm != "postgres" || ev.Time.IsZero() {
				t.Errorf("route %v, header fields %+v", ev.Route, ev)
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

// TestBackendExitForgetsTitle: after a backend's exit the pid's title is
// read again, as the pid may now be another backend's.
func TestBackendExitForgetsTitle(t *testing.T) {
	m := New()
	reads := 0
	m.backends.title = func(uint32) []byte { reads++; return []byte("postgres: bob db1 [local] idle") }
	raw := rawRecord(recStatement, 0, phaseQuery, 0, "", "SELECT 1", "")
	var ev sdk.Event
	for range 3 {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 1 {
		t.Errorf("title read %d times for one backend, want 1", reads)
	}
	ev.Reset()
	if err := m.Decode("", rawRecord(recBackendExit, 0, 0, 0, "", "", "")[:ebpfbase.HeaderSize], &ev); err != nil {
		t.Fatal(err)
	}
	m.Dispatch(&ev)
	ev.Reset()
	if err := m.Decode("", raw, &ev); err != nil {
		t.Fatal(err)
	}
	if reads != 2 {
		t.Errorf("title read %d times after the backend's exit, want 2", reads)
	}
}

// TestDecodeChunks: a long text arrives in chunks before its statement
// record, which gets it whole, or marked truncated when a chunk is
// missing, cut or of another statement.
func TestDecodeChunks(t *testing.T) {
	a, b, c := strings.Repeat("a", chunkMax-1), strings.Repeat("b", chunkMax-1), "SELECT 1"
	whole := a + b + c
	n := uint32(len(whole))
	tests := []struct {
		name          string
		records       [][]byte
		wantText      string
		wantTruncated bool
		wantErrField  bool
	}{
		{name: "complete", records: [][]byte{rawChunk(4242, 7, 0, a), rawChunk(4242, 7, chunkMax-1, b), rawChunk(4242, 7, 2*(chunkMax-1), c), chunkedRecord(0, 7, n, "")},
			wantText: whole},
		{name: "complete with an error", records: [][]byte{rawChunk(4242, 7, 0, a), rawChunk(4242, 7, chunkMax-1, b), rawChunk(4242, 7, 2*(chunkMax-1), c), chunkedRecord(flagError, 7, n, errorResponse)},
			wantText: whole, wantErrField: true},
		{name: "middle chunk lost", records: [][]byte{rawChunk(4242, 7, 0, a), rawChunk(4242, 7, 2*(chunkMax-1), c), chunkedRecord(0, 7, n, "")},
			wantText: a, wantTruncated: true},
		{name: "last chunk lost", records: [][]byte{rawChunk(4242, 7, 0, a), rawChunk(4242, 7, chunkMax-1, b), chunkedRecord(0, 7, n, "")},
			wantText: a + b, wantTruncated: true},
		{name: "cut by the kernel", records: [][]byte{rawChunk(4242, 7, 0, a), chunkedRecord(flagTruncated, 7, uint32(len(a)), "")},
			wantText: a, wantTruncated: true},
		{name: "previous statement's record lost", records: [][]byte{rawChunk(4242, 6, 0, b), rawChunk(4242, 7, 0, a), rawChunk(4242, 7, chunkMax-1, c), chunkedRecord(0, 7, uint32(len(a+c)), "")},
			wantText: a + c},
		{name: "other backend's chunks apart", records: [][]byte{rawChunk(4242, 7, 0, a), rawChunk(4343, 7, 0, b), rawChunk(4242, 7, chunkMax-1, c), chunkedRecord(0, 7, uint32(len(a+c)), "")},
			wantText: a + c},
		{name: "all chunks lost", records: [][]byte{chunkedRecord(0, 7, n, "")}, wantText: "", wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testModule()
			var ev sdk.Event
			for i, raw := range tt.records {
				ev.Reset()
				if err := m.Decode("", raw, &ev); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				last := i == len(tt.records)-1
				if !last && (ev.Route != sdk.RouteModule || ev.Kind != kindTextChunk) {
					t.Fatalf("chunk %d: route %v kind %q, want it kept for the module", i, ev.Route, ev.Kind)
				}
				if !last {
					m.Dispatch(&ev)
				}
			}
			if ev.Route != sdk.RouteOutput || ev.Kind != KindQuery || string(ev.Payload) != tt.wantText {
				t.Errorf("route %v kind %q text of %d bytes, want %d bytes", ev.Route, ev.Kind, len(ev.Payload), len(tt.wantText))
			}
			if _, ok := ev.Field(FieldTruncated); ok != tt.wantTruncated {
				t.Errorf("truncated %v, want %v: %v", ok, tt.wantTruncated, ev.Fields)
			}
			if tt.wantErrField && field(&ev, FieldSQLState) != "42601" {
				t.Errorf("sqlstate %q, want 42601", field(&ev, FieldSQLState))
			}
			// The text was handed out: the next statement does not get it again.
			ev.Reset()
			if err := m.Decode("", chunkedRecord(0, 7, n, ""), &ev); err != nil || len(ev.Payload) != 0 {
				t.Errorf("a second record for text 7: %d bytes, %v", len(ev.Payload), err)
			}
		})
	}
}

// TestDecodeBadChunks: chunk records out of range are errors.
func TestDecodeBadChunks(t *testing.T) {
	m := testModule()
	tooLong := rawChunk(4242, 7, 0, "x")
	binary.NativeEndian.PutUint32(tooLong[24:], chunkMax)
	empty := rawChunk(4242, 7, 0, "")
	far := rawChunk(4242, 7, textLimit, "x")
	for name, tt := range map[string]struct {
		raw  []byte
		want error
	}{
		"header only":       {rawChunk(4242, 7, 0, "x")[:ebpfbase.HeaderSize], ebpfbase.ErrShortRecord},
		"shorter than said": {rawChunk(4242, 7, 0, "xyz")[:offChunkData+1], ebpfbase.ErrShortRecord},
		"over a chunk":      {tooLong, ErrBadRecord},
		"empty":             {empty, ErrBadRecord},
		"past the limit":    {far, ErrBadRecord},
	} {
		var ev sdk.Event
		if err := m.Decode("", tt.raw, &ev); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}

func TestParseTitle(t *testing.T) {
	tests := []struct{ title, user, db string }{
		{"postgres: 15/main: alice shop [local] SELECT", "alice", "shop"},
		{"postgres: alice shop 10.0.0.1(5432) idle in transaction", "alice", "shop"},
		{"postgres: ecaptest: postgres postgres [local] idle\x00\x00\x00", "postgres", "postgres"},
		{"postgres: 15/main: autovacuum launcher", "", ""},
		{"postgres: 15/main: checkpointer", "", ""},
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql", "", ""},
		{"", "", ""},
	}
	var in ebpfbase.Interner
	for _, tt := range tests {
		b := parseTitle([]byte(tt.title), &in)
		if b.user != tt.user || b.database != tt.db {
			t.Errorf("parseTitle(%q) = %+v, want user %q database %q", tt.title, b, tt.user, tt.db)
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	m := testModule()
	for _, raw := range [][]byte{
		rawRecord(recStatement, 0, phaseExecute, 1234567, "P_1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", ""),
		rawRecord(recStatement, flagError, phaseQuery, 5000, "", "SELEC 1", errorResponse),
	} {
		if n := harness.DecodeAllocs(t, func(raw []byte, ev *sdk.Event) error { return m.Decode("", raw, ev) }, raw); n != 0 {
			t.Errorf("Decode allocates %v times per record, want 0", n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(recStatement, 0, phaseQuery, 1000, "", "SELECT 1", ""))
	f.Add(rawRecord(recStatement, flagError|flagTruncated, phaseParse, 0, "P_0", "SELEC", errorResponse))
	f.Add(rawRecord(recBackendExit, 0, 0, 0, "", "", ""))
	f.Add(rawChunk(4242, 7, 0, "SELECT "))
	f.Add(chunkedRecord(0, 7, 8, ""))
	f.Add([]byte{})
	f.Add(make([]byte, offData))
	m := testModule()
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if err := m.Decode("", raw, &ev); err != nil {
			return
		}
		h, _ := ebpfbase.DecodeHeader(raw)
		if h.Kind == recStatement && h.Flags&flagChunked != 0 && len(ev.Payload) > textLimit {
			t.Fatalf("a joined text of %d bytes, over %d", len(ev.Payload), textLimit)
		}
		if h.Kind == recStatement && h.Flags&flagChunked == 0 && (len(ev.Payload) != int(h.Len) || len(raw) < offData+int(h.Len)) {
			t.Fatalf("accepted a record whose text does not fit: len %d, raw %d", h.Len, len(raw))
		}
	})
}
