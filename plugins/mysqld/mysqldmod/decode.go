package mysqldmod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// Fields of the events, beside the payload (the statement's text).
const (
	// FieldDuration is the time from the command's arrival in
	// dispatch_command to its return, in microseconds.
	FieldDuration = "duration_us"
	// FieldStatus is "ok" or "error"; absent for a command the server
	// sends no reply to (COM_QUIT, COM_STMT_CLOSE...: its
	// Diagnostics_area stays empty) or when the layout leaves the
	// Diagnostics_area unread.
	FieldStatus = "status"
	// FieldErrorCode, FieldSQLState and FieldError describe an error:
	// its number (1064), its SQLSTATE (42000) and its message.
	FieldErrorCode = "error_code"
	FieldSQLState  = "sqlstate"
	FieldError     = "error"
	// FieldAffectedRows is what the OK reply says (rows inserted,
	// updated, deleted); FieldWarnings the statement's warning count
	// when not 0.
	FieldAffectedRows = "affected_rows"
	FieldWarnings     = "warnings"
	// FieldRowsSent is the rows a statement's result set sent, on a
	// query or stmt_execute whose reply was a result set (as the slow
	// query log counts them: the last statement's).
	FieldRowsSent = "rows_sent"
	// FieldStmtID is the prepared statement a COM_STMT_* command names
	// (the thread id for COM_PROCESS_KILL).
	FieldStmtID = "stmt_id"
	// FieldPrepared is, on a query event running EXECUTE, the text of
	// the prepared statement it ran.
	FieldPrepared = "prepared_statement"
	// FieldTruncated is "true" when the text is incomplete: longer than
	// the kernel sends (32 MiB), or a chunk was lost.
	FieldTruncated = "truncated"
)

// Event kinds: the command (enum_server_command) without its COM_ prefix,
// in lower case; "command_N" for a number the module does not name.
const (
	KindQuery       = "query"
	KindStmtPrepare = "stmt_prepare"
	KindStmtExecute = "stmt_execute"
)

// Values of ecap_hdr.kind and .flags in kern/mysqld_kern.c.
const (
	kindText = 1
	kindDone = 2

	flagTruncated = 1 << 0
	flagTextLost  = 1 << 1
	flagThreadID  = 1 << 2
	flagDA        = 1 << 3
	flagPrepared  = 1 << 4
	flagMessage   = 1 << 5
	flagRows      = 1 << 6
)

// Sizes of kern/mysqld_kern.c.
const (
	chunkMax = 16 << 10 // MYSQLD_CHUNK_MAX
	textMax  = 32 << 20 // MYSQLD_TEXT_MAX
	msgMax   = 512      // MYSQLD_MSG_MAX
)

// maxPending bounds the calls whose text is held while their end is
// awaited: one per server thread inside dispatch_command.
const maxPending = 4096

// textRecord is the Go twin of struct mysqld_text; TestLayout proves it.
type textRecord struct {
	Hdr      ebpfbase.Header
	StartNs  uint64
	Total    uint64
	Offset   uint64
	Part     uint32
	Reserved uint32
	Data     [chunkMax]byte
}

// doneRecord is the Go twin of struct mysqld_done.
type doneRecord struct {
	Hdr          ebpfbase.Header
	StartNs      uint64
	ThreadID     uint64
	AffectedRows uint64
	TextLen      uint64
	PreparedLen  uint64
	RowsSent     uint64
	Command      uint32
	StmtID       uint32
	DAStatus     uint32
	SQLErrno     uint32
	Warnings     uint32
	Ret          uint32
	SQLState     [8]byte
	Message      [msgMax]byte
}

// Offsets the decoder reads (unsafe.Offsetof of the records; TestLayout).
const (
	offTextStart = ebpfbase.HeaderSize
	offTextTotal = offTextStart + 8
	offTextOff   = offTextStart + 16
	offTextPart  = offTextStart + 24
	offTextData  = offTextStart + 32

	offDoneStart    = ebpfbase.HeaderSize
	offDoneThread   = offDoneStart + 8
	offDoneAffected = offDoneStart + 16
	offDoneTextLen  = offDoneStart + 24
	offDonePrepLen  = offDoneStart + 32
	offDoneSent     = offDoneStart + 40
	offDoneCommand  = offDoneStart + 48
	offDoneStmtID   = offDoneStart + 52
	offDoneDAStatus = offDoneStart + 56
	offDoneErrno    = offDoneStart + 60
	offDoneWarnings = offDoneStart + 64
	offDoneSQLState = offDoneStart + 72
	offDoneMessage  = offDoneStart + 80
)

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, lengths out of range).
var ErrBadRecord = errors.New("bad mysqld record")

// Commands of enum_server_command (MariaDB) the decoder treats apart.
const (
	comQuery        = 3
	comStmtExecute  = 23
	comStmtBulkExec = 250
	comStmtPrepare  = 22
	comProcessKill  = 12
	comStmtSendLong = 24
	comStmtClose    = 25
	comStmtReset    = 26
	comStmtFetch    = 28
)

// commandNames are the event kinds of MariaDB's enum_server_command.
var commandNames = func() (n [256]string) {
	copy(n[:], []string{"sleep", "quit", "init_db", "query", "field_list", "create_db", "drop_db",
		"refresh", "shutdown", "statistics", "process_info", "connect", "process_kill", "debug", "ping",
		"time", "delayed_insert", "change_user", "binlog_dump", "table_dump", "connect_out",
		"register_slave", "stmt_prepare", "stmt_execute", "stmt_send_long_data", "stmt_close",
		"stmt_reset", "set_option", "stmt_fetch", "daemon", "unimplemented", "reset_connection"})
	n[250], n[251], n[252], n[253], n[254] = "stmt_bulk_execute", "slave_worker", "slave_io", "slave_sql", "multi"
	for i := range n {
		if n[i] == "" {
			n[i] = "command_" + strconv.Itoa(i)
		}
	}
	return n
}()

func commandName(c uint32) string {
	if c < uint32(len(commandNames)) {
		return commandNames[c]
	}
	return "command_" + strconv.FormatUint(uint64(c), 10)
}

// call is the text of one dispatch_command call, joined from its chunks.
type call struct {
	startNs  uint64
	text     []byte
	prepared []byte
	broken   bool // a chunk came out of order: the text has a hole
}

// decoder joins text chunks with their call's end. It is used from Run's
// goroutine only.
type decoder struct {
	calls   map[uint64]*call // by pid<<32 | tid
	free    []*call
	orphans uint64
	scratch []byte // the fields' digits, turned into one string per event
}

func (d *decoder) init() { d.calls = map[uint64]*call{} }

// Decode decodes a record of kern/mysqld_kern.c. A text chunk is kept and
// routed to the module (Dispatch ignores it); a call's end becomes the
// event, with the text of its chunks. It never panics: a short or
// inconsistent record is an error wrapping ebpfbase.ErrShortRecord or
// ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return err
	}
	orphans := m.dec.orphans
	defer func() {
		if m.dec.orphans != orphans && m.sink != nil {
			m.sink.SetCounter(CounterOrphans, m.dec.orphans)
		}
	}()
	switch h.Kind {
	case kindText:
		return m.dec.text(&h, raw, ev)
	case kindDone:
		if err := m.dec.done(&h, raw, ev); err != nil {
			return err
		}
		m.stamp.FillEvent(&h, ev)
		ev.Time = ebpfbase.KtimeToTime(binary.NativeEndian.Uint64(raw[offDoneStart:]))
		return nil
	}
	return fmt.Errorf("decoding mysqld record: unknown kind %d: %w", h.Kind, ErrBadRecord)
}

// Dispatch receives the text chunks Decode keeps: nothing to do.
func (m *Module) Dispatch(*sdk.Event) {}

func (d *decoder) text(h *ebpfbase.Header, raw []byte, ev *sdk.Event) error {
	if len(raw) < offTextData {
		return fmt.Errorf("decoding mysqld text: %d bytes, want at least %d: %w", len(raw), offTextData, ebpfbase.ErrShortRecord)
	}
	if h.Len == 0 || h.Len > chunkMax {
		return fmt.Errorf("decoding mysqld text: chunk of %d bytes, 1 to %d: %w", h.Len, chunkMax, ErrBadRecord)
	}
	end := offTextData + int(h.Len)
	if len(raw) < end {
		return fmt.Errorf("decoding mysqld text: %d bytes, the chunk needs %d: %w", len(raw), end, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	start, total, off, part := bo.Uint64(raw[offTextStart:]), bo.Uint64(raw[offTextTotal:]), bo.Uint64(raw[offTextOff:]), bo.Uint32(raw[offTextPart:])
	if part > 1 || total > textMax || off >= total || off+uint64(h.Len) > total {
		return fmt.Errorf("decoding mysqld text: part %d, chunk at %d+%d of %d: %w", part, off, h.Len, total, ErrBadRecord)
	}
	c := d.callOf(uint64(h.PID)<<32|uint64(h.TID), start)
	buf := &c.text
	if part == 1 {
		buf = &c.prepared
	}
	if uint64(len(*buf)) != off {
		c.broken = true
	} else {
		*buf = append(*buf, raw[offTextData:end]...)
	}
	ev.Route = sdk.RouteModule
	ev.Kind = "text_chunk"
	return nil
}

// callOf returns the pending call of thread key that started at start,
// making it when needed. A call of that thread that started earlier never
// ended (its end record was lost): it is counted and dropped.
func (d *decoder) callOf(key, start uint64) *call {
	c := d.calls[key]
	if c != nil && c.startNs == start {
		return c
	}
	if c != nil {
		d.orphans++
		d.release(key, c)
	}
	if len(d.calls) >= maxPending {
		for k, old := range d.calls {
			d.orphans++
			d.release(k, old)
			break
		}
	}
	if n := len(d.free); n > 0 {
		c, d.free = d.free[n-1], d.free[:n-1]
	} else {
		c = &call{}
	}
	c.startNs, c.text, c.prepared, c.broken = start, c.text[:0], c.prepared[:0], false
	d.calls[key] = c
	return c
}

// release forgets call c of thread key, keeping its buffers for another
// call unless they grew large.
func (d *decoder) release(key uint64, c *call) {
	delete(d.calls, key)
	if cap(c.text)+cap(c.prepared) > 1<<20 {
		return
	}
	d.free = append(d.free, c)
}

func (d *decoder) done(h *ebpfbase.Header, raw []byte, ev *sdk.Event) error {
	if len(raw) < offDoneMessage {
		return fmt.Errorf("decoding mysqld end: %d bytes, want at least %d: %w", len(raw), offDoneMessage, ebpfbase.ErrShortRecord)
	}
	if h.Len >= msgMax {
		return fmt.Errorf("decoding mysqld end: message of %d bytes, at most %d: %w", h.Len, msgMax-1, ErrBadRecord)
	}
	if len(raw) < offDoneMessage+int(h.Len) {
		return fmt.Errorf("decoding mysqld end: %d bytes, the message needs %d: %w", len(raw), offDoneMessage+int(h.Len), ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	start := bo.Uint64(raw[offDoneStart:])
	textLen, prepLen := bo.Uint64(raw[offDoneTextLen:]), bo.Uint64(raw[offDonePrepLen:])
	command := bo.Uint32(raw[offDoneCommand:])
	if textLen > textMax || prepLen > textMax {
		return fmt.Errorf("decoding mysqld end: texts of %d and %d bytes, at most %d: %w", textLen, prepLen, textMax, ErrBadRecord)
	}

	key := uint64(h.PID)<<32 | uint64(h.TID)
	var text, prepared []byte
	complete := h.Flags&(flagTruncated|flagTextLost) == 0
	c := d.calls[key]
	if c != nil && c.startNs != start {
		d.orphans++
		d.release(key, c)
		c = nil
	}
	if c != nil {
		text, prepared = c.text, c.prepared
		complete = complete && !c.broken
	}
	if uint64(len(text)) != textLen || uint64(len(prepared)) != prepLen {
		complete = false
	}

	ev.Kind = commandName(command)
	ev.Route = sdk.RouteOutput
	if h.Flags&flagThreadID != 0 {
		ev.Conn.ID = bo.Uint64(raw[offDoneThread:])
	}
	payload := text
	if command == comStmtExecute || command == comStmtBulkExec {
		payload = prepared
	}
	ev.Payload = append(ev.Payload[:0], payload...)

	// The numbers go into one string: one allocation per event.
	s := d.scratch[:0]
	var marks [8]int
	nm := 0
	mark := func() { marks[nm] = len(s); nm++ }
	end := h.TimestampNs
	var durUs uint64
	if end > start {
		durUs = (end - start + 500) / 1000
	}
	s = strconv.AppendUint(s, durUs, 10)
	mark()
	status := ""
	var errno uint32
	if h.Flags&flagDA != 0 {
		switch bo.Uint32(raw[offDoneDAStatus:]) {
		case daOK, daEOF, daOKBulk, daEOFBulk, daDisabled:
			// DA_DISABLED: the command sent its reply itself
			// (COM_STMT_PREPARE's statement id and metadata).
			status = "ok"
		case daError:
			status = "error"
			errno = bo.Uint32(raw[offDoneErrno:])
		}
	}
	s = strconv.AppendUint(s, uint64(errno), 10)
	mark()
	s = strconv.AppendUint(s, bo.Uint64(raw[offDoneAffected:]), 10)
	mark()
	warnings := bo.Uint32(raw[offDoneWarnings:])
	s = strconv.AppendUint(s, uint64(warnings), 10)
	mark()
	stmtID := bo.Uint32(raw[offDoneStmtID:])
	s = strconv.AppendUint(s, uint64(stmtID), 10)
	mark()
	s = strconv.AppendUint(s, bo.Uint64(raw[offDoneSent:]), 10)
	mark()
	d.scratch = s
	str := string(s)
	part := func(i int) string {
		from := 0
		if i > 0 {
			from = marks[i-1]
		}
		return str[from:marks[i]]
	}

	ev.AddField(FieldDuration, part(0))
	if status != "" {
		ev.AddField(FieldStatus, status)
	}
	if status == "error" {
		ev.AddField(FieldErrorCode, part(1))
		if st := cString(raw[offDoneSQLState : offDoneSQLState+6]); len(st) > 0 {
			ev.AddField(FieldSQLState, string(st))
		}
		if h.Flags&flagMessage != 0 {
			ev.AddField(FieldError, string(raw[offDoneMessage:offDoneMessage+int(h.Len)]))
		}
	}
	daStatus := bo.Uint32(raw[offDoneDAStatus:])
	if status == "ok" && daStatus == daOK {
		ev.AddField(FieldAffectedRows, part(2))
	}
	if h.Flags&flagRows != 0 && daStatus == daEOF && (command == comQuery || command == comStmtExecute) {
		ev.AddField(FieldRowsSent, part(5))
	}
	if warnings != 0 {
		ev.AddField(FieldWarnings, part(3))
	}
	switch command {
	case comStmtExecute, comStmtBulkExec, comStmtClose, comStmtReset, comStmtFetch, comStmtSendLong, comProcessKill:
		ev.AddField(FieldStmtID, part(4))
	}
	if command == comQuery && h.Flags&flagPrepared != 0 && len(prepared) > 0 {
		ev.AddField(FieldPrepared, string(prepared))
	}
	if !complete {
		ev.AddField(FieldTruncated, "true")
	}
	if c != nil {
		d.release(key, c)
	}
	return nil
}

// cString returns b up to its first NUL.
func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
