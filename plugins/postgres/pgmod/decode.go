package pgmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Event kinds and fields.
const (
	KindQuery   = "query"
	KindExecute = "execute"
	KindParse   = "parse"
	KindBind    = "bind"
	// KindStatement is an error raised in a message of no known phase.
	KindStatement = "statement"

	FieldStatus    = "status" // StatusOK or StatusError
	FieldSQLState  = "sqlstate"
	FieldError     = "error"
	FieldDuration  = "duration_us"
	FieldUser      = "user"
	FieldDatabase  = "database"
	FieldStatement = "statement" // the prepared statement's name
	FieldTruncated = "truncated"

	StatusOK    = "ok"
	StatusError = "error"
)

// kindBackendExit is the Kind of the events a backend's exit is decoded
// to; they go to Dispatch, never to the host.
const kindBackendExit = "backend_exit"

// kindTextChunk is the Kind of a long text's chunk, which Decode keeps for
// the statement record after it; it goes to Dispatch, which ignores it.
const kindTextChunk = "text_chunk"

// Values of kern/postgres_kern.c.
const (
	recStatement   = 1
	recBackendExit = 2
	recText        = 3

	phaseNone    = 0
	phaseParse   = 1
	phaseBind    = 2
	phaseQuery   = 3
	phaseExecute = 4

	flagTruncated = 1 << 0
	flagError     = 1 << 1
	flagChunked   = 1 << 3

	textMax   = 16384            // PG_TEXT_MAX
	errMax    = 512              // PG_ERR_MAX
	nameMax   = 64               //
	chunkMax  = 16384            // PG_CHUNK_MAX
	textLimit = 32 * 1024 * 1024 // PG_TEXT_LIMIT
)

// maxLong bounds the backends whose long text is being joined: a
// backend's chunks are followed by its statement record, so one at a time
// per backend, and only while its records are in flight.
const maxLong = 1024

var phaseKinds = [...]string{phaseNone: KindStatement, phaseParse: KindParse, phaseBind: KindBind, phaseQuery: KindQuery, phaseExecute: KindExecute}

// record is the Go twin of struct pg_event; TestLayout proves it.
type record struct {
	Hdr        ebpfbase.Header
	DurationNs uint64
	TextID     uint64
	TextLen    uint32
	Phase      uint32
	ErrLen     uint32
	Reserved   uint32
	StmtName   [nameMax]byte
	Data       [textMax + errMax]byte
}

// textRecord is the Go twin of struct pg_text, a chunk of a long text.
type textRecord struct {
	Hdr      ebpfbase.Header
	TextID   uint64
	Offset   uint32
	Reserved uint32
	Data     [chunkMax]byte
}

// Offsets in the records (unsafe.Offsetof; TestLayout checks them).
const (
	offDuration = ebpfbase.HeaderSize
	offTextID   = offDuration + 8
	offTextLen  = offTextID + 8
	offPhase    = offTextLen + 4
	offErrLen   = offPhase + 4
	offStmtName = offErrLen + 8
	offData     = offStmtName + nameMax

	offChunkID     = ebpfbase.HeaderSize
	offChunkOffset = offChunkID + 8
	offChunkData   = offChunkOffset + 8
)

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind or phase, length out of range).
var ErrBadRecord = errors.New("bad postgres record")

// Decode decodes a struct pg_event into ev, or a backend's exit into a
// RouteModule event. It never panics: a short or inconsistent record is
// an error wrapping ebpfbase.ErrShortRecord or ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return err
	}
	switch h.Kind {
	case recBackendExit:
		m.stamp.FillEvent(&h, ev)
		ev.Kind, ev.Route = kindBackendExit, sdk.RouteModule
		return nil
	case recText:
		return m.chunk(&h, raw, ev)
	case recStatement:
	default:
		return fmt.Errorf("decoding postgres record: unknown kind %d: %w", h.Kind, ErrBadRecord)
	}
	if len(raw) < offData {
		return fmt.Errorf("decoding postgres record: %d bytes, want at least %d: %w", len(raw), offData, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	phase, errLen := bo.Uint32(raw[offPhase:]), bo.Uint32(raw[offErrLen:])
	if h.Len >= textMax || errLen >= errMax || phase >= uint32(len(phaseKinds)) {
		return fmt.Errorf("decoding postgres record: text %d bytes, error %d bytes, phase %d: %w", h.Len, errLen, phase, ErrBadRecord)
	}
	end := offData + int(h.Len) + int(errLen)
	if len(raw) < end {
		return fmt.Errorf("decoding postgres record: %d bytes, text and error need %d: %w", len(raw), end, ebpfbase.ErrShortRecord)
	}
	complete := true
	m.stamp.FillEvent(&h, ev)
	ev.Kind = phaseKinds[phase]
	ev.Route = sdk.RouteOutput
	if h.Flags&flagChunked != 0 {
		ev.Payload, complete = m.long.take(h.PID, bo.Uint64(raw[offTextID:]), bo.Uint32(raw[offTextLen:]), ev.Payload[:0])
	} else {
		ev.Payload = append(ev.Payload[:0], raw[offData:offData+int(h.Len)]...)
	}
	if h.Flags&flagError != 0 {
		ev.AddField(FieldStatus, StatusError)
		code, msg := errorFields(raw[offData+int(h.Len) : end])
		if len(code) > 0 {
			ev.AddField(FieldSQLState, m.in.String(code))
		}
		if len(msg) > 0 {
			ev.AddField(FieldError, m.in.String(msg))
		}
	} else {
		ev.AddField(FieldStatus, StatusOK)
	}
	us := bo.Uint64(raw[offDuration:]) / 1000
	ev.AddField(FieldDuration, m.in.String(strconv.AppendUint(m.num[:0], us, 10)))
	if b := m.backends.lookup(h.PID, &m.in); b.user != "" {
		ev.AddField(FieldUser, b.user)
		ev.AddField(FieldDatabase, b.database)
	}
	if name := trimNUL(raw[offStmtName:offData]); len(name) > 0 {
		ev.AddField(FieldStatement, m.in.String(name))
	}
	if h.Flags&flagTruncated != 0 || !complete {
		ev.AddField(FieldTruncated, "true")
	}
	return nil
}

// chunk keeps a chunk of a long text for the statement record that
// follows it; the event goes to Dispatch, which ignores it.
func (m *Module) chunk(h *ebpfbase.Header, raw []byte, ev *sdk.Event) error {
	if len(raw) < offChunkData {
		return fmt.Errorf("decoding postgres text chunk: %d bytes, want at least %d: %w", len(raw), offChunkData, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	off := bo.Uint32(raw[offChunkOffset:])
	if h.Len == 0 || h.Len >= chunkMax || off >= textLimit {
		return fmt.Errorf("decoding postgres text chunk: %d bytes at %d: %w", h.Len, off, ErrBadRecord)
	}
	end := offChunkData + int(h.Len)
	if len(raw) < end {
		return fmt.Errorf("decoding postgres text chunk: %d bytes, the chunk needs %d: %w", len(raw), end, ebpfbase.ErrShortRecord)
	}
	m.long.add(h.PID, bo.Uint64(raw[offChunkID:]), off, raw[offChunkData:end])
	ev.Kind, ev.Route = kindTextChunk, sdk.RouteModule
	return nil
}

// longText is the text of a backend's statement being joined from its
// chunks.
type longText struct {
	id   uint64
	buf  []byte
	hole bool // a chunk is missing: the ring buffer could not take it
}

// longTexts joins the chunks of long texts, by backend. Used by the
// goroutine running Run only.
type longTexts struct {
	m map[uint32]*longText
}

// add appends a chunk of text id of backend pid. A chunk of another id
// starts the text over: the previous one's statement record was lost
// (counted by ebpfbase).
func (l *longTexts) add(pid uint32, id uint64, off uint32, data []byte) {
	t := l.m[pid]
	if t == nil {
		if l.m == nil || len(l.m) >= maxLong {
			l.m = make(map[uint32]*longText, 4)
		}
		t = &longText{}
		l.m[pid] = t
	}
	if t.id != id {
		t.id, t.buf, t.hole = id, t.buf[:0], false
	}
	if uint32(len(t.buf)) != off || len(t.buf)+len(data) > textLimit {
		t.hole = true
		return
	}
	t.buf = append(t.buf, data...)
}

// take appends to dst the text id of backend pid, which should be n bytes
// long, and forgets it; complete is false when chunks are missing.
func (l *longTexts) take(pid uint32, id uint64, n uint32, dst []byte) (out []byte, complete bool) {
	t := l.m[pid]
	if t == nil || t.id != id {
		return dst, n == 0
	}
	dst = append(dst, t.buf...)
	complete = !t.hole && uint32(len(t.buf)) == n
	if cap(t.buf) > 1<<20 {
		delete(l.m, pid) // let a large buffer go
	} else {
		t.id, t.buf = 0, t.buf[:0]
	}
	return dst, complete
}

func (l *longTexts) forget(pid uint32) { delete(l.m, pid) }

// Dispatch receives the exits of backends: what was cached about the
// pid is forgotten, as the pid may be reused.
func (m *Module) Dispatch(ev *sdk.Event) {
	if ev.Kind == kindBackendExit {
		m.backends.forget(ev.PID)
		m.long.forget(ev.PID)
	}
}

// errorFields returns the SQLSTATE and the message of an ErrorResponse
// body: fields of a type byte and a NUL-terminated string, ending with a
// zero byte. A body cut short yields what it holds.
func errorFields(body []byte) (code, msg []byte) {
	for len(body) > 1 && body[0] != 0 {
		typ := body[0]
		body = body[1:]
		v := body
		if i := bytes.IndexByte(body, 0); i >= 0 {
			v, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		switch typ {
		case 'C':
			code = v
		case 'M':
			msg = v
		}
	}
	return code, msg
}
