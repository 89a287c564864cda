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

// Values of kern/postgres_kern.c.
const (
	recStatement   = 1
	recBackendExit = 2

	phaseNone    = 0
	phaseParse   = 1
	phaseBind    = 2
	phaseQuery   = 3
	phaseExecute = 4

	flagTruncated = 1 << 0
	flagError     = 1 << 1

	textMax = 16384
	errMax  = 512
	nameMax = 64
)

var phaseKinds = [...]string{phaseNone: KindStatement, phaseParse: KindParse, phaseBind: KindBind, phaseQuery: KindQuery, phaseExecute: KindExecute}

// record is the Go twin of struct pg_event; TestLayout proves it.
type record struct {
	Hdr        ebpfbase.Header
	DurationNs uint64
	Phase      uint32
	ErrLen     uint32
	StmtName   [nameMax]byte
	Data       [textMax + errMax]byte
}

const (
	offDuration = ebpfbase.HeaderSize // unsafe.Offsetof(record{}.DurationNs)
	offPhase    = offDuration + 8
	offErrLen   = offPhase + 4
	offStmtName = offErrLen + 4
	offData     = offStmtName + nameMax
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
	m.stamp.FillEvent(&h, ev)
	ev.Kind = phaseKinds[phase]
	ev.Route = sdk.RouteOutput
	text := raw[offData : offData+int(h.Len)]
	ev.Payload = append(ev.Payload[:0], text...)
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
	if h.Flags&flagTruncated != 0 {
		ev.AddField(FieldTruncated, "true")
	}
	return nil
}

// Dispatch receives the exits of backends: what was cached about the
// pid is forgotten, as the pid may be reused.
func (m *Module) Dispatch(ev *sdk.Event) {
	if ev.Kind == kindBackendExit {
		m.backends.forget(ev.PID)
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
