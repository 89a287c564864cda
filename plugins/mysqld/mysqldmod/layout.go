package mysqldmod

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

// layout is where a server build keeps what the probes read at the return
// of dispatch_command, in bytes from the start of the structure each name
// says; -1 is a member not read. Each field is a const volatile off_* of
// kern/mysqld_kern.c, set before load.
type layout struct {
	THDThreadID     int64 // THD: my_thread_id thread_id
	THDStmtDA       int64 // THD: Diagnostics_area *m_stmt_da
	DASQLState      int64 // Diagnostics_area: char m_sqlstate[6]
	DAErrno         int64 // Diagnostics_area: uint m_sql_errno
	DAMessage       int64 // Diagnostics_area: char m_message[MYSQL_ERRMSG_SIZE]
	DAAffectedRows  int64 // Diagnostics_area: ulonglong m_affected_rows
	DAWarnCount     int64 // Diagnostics_area: uint m_statement_warn_count
	DAStatus        int64 // Diagnostics_area: enum_diagnostics_status m_status
	StmtQueryString int64 // Statement (THD, Prepared_statement): LEX_CSTRING query_string
	THDSentRows     int64 // THD: ha_rows m_sent_row_count
}

// offsetNames are the names the offsets attribute takes, in the order of
// layout's fields, with the constant of kern/mysqld_kern.c each sets.
var offsetNames = []struct{ name, constant string }{
	{"thd_thread_id", "off_thd_thread_id"},
	{"thd_stmt_da", "off_thd_stmt_da"},
	{"da_sqlstate", "off_da_sqlstate"},
	{"da_errno", "off_da_errno"},
	{"da_message", "off_da_message"},
	{"da_affected_rows", "off_da_affected_rows"},
	{"da_warn_count", "off_da_warn_count"},
	{"da_status", "off_da_status"},
	{"stmt_query_string", "off_stmt_query"},
	{"thd_sent_rows", "off_thd_sent_rows"},
}

func (l *layout) fields() []*int64 {
	return []*int64{&l.THDThreadID, &l.THDStmtDA, &l.DASQLState, &l.DAErrno, &l.DAMessage,
		&l.DAAffectedRows, &l.DAWarnCount, &l.DAStatus, &l.StmtQueryString, &l.THDSentRows}
}

// unknownLayout has every member unread.
func unknownLayout() layout {
	var l layout
	for _, f := range l.fields() {
		*f = -1
	}
	return l
}

// constants returns the values of the off_* constants of kern/mysqld_kern.c.
func (l layout) constants() map[string]any {
	out := map[string]any{}
	for i, f := range l.fields() {
		out[offsetNames[i].constant] = *f
	}
	return out
}

func (l layout) String() string {
	var parts []string
	for i, f := range l.fields() {
		parts = append(parts, fmt.Sprintf("%s=%#x", offsetNames[i].name, *f))
	}
	return strings.Join(parts, " ")
}

// errmsgSize is MYSQL_ERRMSG_SIZE, the size of Diagnostics_area::m_message.
const errmsgSize = 512

// daDisabled is DA_DISABLED of MariaDB's enum_diagnostics_status (DA_EMPTY,
// DA_OK, DA_EOF, DA_OK_BULK, DA_EOF_BULK, DA_ERROR, DA_DISABLED), what
// Diagnostics_area::disable_status stores.
const daDisabled = 6

// Values of MariaDB's enum_diagnostics_status the decoder tells apart.
const (
	daEmpty   = 0
	daOK      = 1
	daEOF     = 2
	daOKBulk  = 3
	daEOFBulk = 4
	daError   = 5
)

// The accessors of MariaDB's plugin API whose code gives the offsets (each
// a single load on x86-64 builds of 10.x and 11.x), and the member function
// storing DA_DISABLED.
const (
	symGetThreadID     = "thd_get_thread_id"     // return thd->thread_id
	symGetErrorNumber  = "thd_get_error_number"  // return thd->get_stmt_da()->sql_errno()
	symGetErrorMessage = "thd_get_error_message" // return thd->get_stmt_da()->message()
	symQueryString     = "thd_query_string"      // return &thd->query_string.string
	symDisableStatus   = "_ZN16Diagnostics_area14disable_statusEv"
	// Optional: without it the events carry no rows_sent.
	symSetSentRows = "_ZN3THD18set_sent_row_countEy" // m_sent_row_count= n; ...
)

// errLayout is wrapped when a member's offset cannot be read from the
// binary's code.
var errLayout = errors.New("offset not found in the code")

// readLayout reads the layout of the MariaDB server at path from the code
// of its accessors, and checks what MariaDB's class definitions imply:
// m_sqlstate[6] before m_sql_errno; m_affected_rows after m_message[512],
// then m_last_insert_id, m_statement_warn_count and m_status. Members
// named in skip are not read (the offsets attribute sets them); their
// checks are left out. The sent row counter is optional: when its code is
// not found or not as expected it stays unread, and missing says why.
func readLayout(path string, skip map[string]bool) (l layout, missing []string, err error) {
	l = unknownLayout()
	f, err := elfsym.Open(path)
	if err != nil {
		return l, nil, err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return l, nil, fmt.Errorf("%s is not x86-64: the offsets are read from x86-64 code only: %w", path, errLayout)
	}
	code := func(sym string) ([]byte, error) { return funcCode(f, path, sym, 32) }
	var errs []error
	fail := func(sym, what string, err error) {
		if err == nil {
			err = fmt.Errorf("its code is not %s", what)
		}
		errs = append(errs, fmt.Errorf("%s: %w", sym, err))
	}

	if !skip["thd_thread_id"] {
		if c, err := code(symGetThreadID); err != nil {
			fail(symGetThreadID, "", err)
		} else if d, n, ok := movLoad(c, regRDI, true); ok && isRet(c[n:]) {
			l.THDThreadID = int64(d)
		} else {
			fail(symGetThreadID, "mov disp(%rdi),%rax; ret", nil)
		}
	}
	if !skip["thd_stmt_da"] || !skip["da_errno"] {
		if c, err := code(symGetErrorNumber); err != nil {
			fail(symGetErrorNumber, "", err)
		} else if da, n, ok := movLoad(c, regRDI, true); !ok {
			fail(symGetErrorNumber, "mov disp(%rdi),%rax; mov disp(%rax),%eax; ret", nil)
		} else if e, m, ok := movLoad(c[n:], regRAX, false); ok && isRet(c[n+m:]) {
			l.THDStmtDA, l.DAErrno = int64(da), int64(e)
		} else {
			fail(symGetErrorNumber, "mov disp(%rdi),%rax; mov disp(%rax),%eax; ret", nil)
		}
	}
	if !skip["da_message"] {
		if c, err := code(symGetErrorMessage); err != nil {
			fail(symGetErrorMessage, "", err)
		} else if da, n, ok := movLoad(c, regRDI, true); !ok {
			fail(symGetErrorMessage, "mov disp(%rdi),%rax; add $imm,%rax; ret", nil)
		} else if msg, m, ok := addRAX(c[n:]); ok && isRet(c[n+m:]) {
			if l.THDStmtDA >= 0 && int64(da) != l.THDStmtDA {
				errs = append(errs, fmt.Errorf("%s reads the Diagnostics_area at %#x, %s at %#x", symGetErrorMessage, da, symGetErrorNumber, l.THDStmtDA))
			}
			l.DAMessage = int64(msg)
		} else {
			fail(symGetErrorMessage, "mov disp(%rdi),%rax; add $imm,%rax; ret", nil)
		}
	}
	if !skip["da_status"] {
		if c, err := code(symDisableStatus); err != nil {
			fail(symDisableStatus, "", err)
		} else if d, v, n, ok := movStoreImm(c, regRDI); ok && isRet(c[n:]) {
			if v != daDisabled {
				errs = append(errs, fmt.Errorf("%s stores %d, MariaDB's DA_DISABLED is %d: another enum_diagnostics_status", symDisableStatus, v, daDisabled))
			}
			l.DAStatus = int64(d)
		} else {
			fail(symDisableStatus, "movl $imm,disp(%rdi); ret", nil)
		}
	}
	if !skip["stmt_query_string"] {
		if c, err := code(symQueryString); err != nil {
			fail(symQueryString, "", err)
		} else if d, n, ok := leaRDI(c); ok && isRet(c[n:]) {
			l.StmtQueryString = int64(d)
		} else {
			fail(symQueryString, "lea disp(%rdi),%rax; ret", nil)
		}
	}
	if !skip["thd_sent_rows"] {
		if c, err := code(symSetSentRows); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", symSetSentRows, err))
		} else if d, ok := movRSIToRDI(c); ok {
			l.THDSentRows = int64(d)
		} else {
			missing = append(missing, symSetSentRows+": its code does not start with mov %rsi,disp(%rdi)")
		}
	}
	// What MariaDB's Diagnostics_area implies.
	if !skip["da_sqlstate"] && l.DAErrno >= 0 {
		if l.DAErrno != 8 {
			errs = append(errs, fmt.Errorf("m_sql_errno at %#x, not 8 after m_sqlstate[6]: another Diagnostics_area", l.DAErrno))
		} else {
			l.DASQLState = 0
		}
	}
	if l.DAMessage >= 0 {
		affected := (l.DAMessage + errmsgSize + 7) &^ 7
		if !skip["da_affected_rows"] {
			l.DAAffectedRows = affected
		}
		if !skip["da_warn_count"] {
			l.DAWarnCount = affected + 16
		}
		if !skip["da_status"] && !skip["da_affected_rows"] && l.DAStatus >= 0 && l.DAStatus != affected+20 {
			errs = append(errs, fmt.Errorf("m_status at %#x, m_message at %#x: the members between them are not m_affected_rows, m_last_insert_id and m_statement_warn_count", l.DAStatus, l.DAMessage))
		}
	}
	return l, missing, errors.Join(errs...)
}

// funcCode returns the first n bytes of the code of function sym in f,
// after an endbr64.
func funcCode(f *elf.File, path, sym string, n int) ([]byte, error) {
	addr, err := elfsym.Value(path, sym)
	if err != nil {
		return nil, err
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || addr < p.Vaddr || addr+uint64(n) > p.Vaddr+p.Filesz {
			continue
		}
		buf := make([]byte, n)
		if _, err := p.ReadAt(buf, int64(addr-p.Vaddr)); err != nil {
			return nil, fmt.Errorf("reading the code of %s in %s: %w", sym, path, err)
		}
		if len(buf) >= 4 && buf[0] == 0xf3 && buf[1] == 0x0f && buf[2] == 0x1e && buf[3] == 0xfa {
			buf = buf[4:]
		}
		return buf, nil
	}
	return nil, fmt.Errorf("%s in %s is not in an executable segment", sym, path)
}

// x86-64 register numbers in a ModRM byte.
const (
	regRAX = 0
	regRSI = 6
	regRDI = 7
)

// modrmDisp decodes a ModRM byte whose reg field is reg and whose memory
// operand is disp(base) (mod 00, 01 or 10, no SIB, no RIP), at the start
// of code; it returns the displacement and the bytes used (ModRM and
// displacement).
func modrmDisp(code []byte, reg, base byte) (int32, int, bool) {
	if len(code) < 1 {
		return 0, 0, false
	}
	m := code[0]
	if m&7 != base || (m>>3)&7 != reg || base == 4 {
		return 0, 0, false
	}
	switch m >> 6 {
	case 0:
		if base == 5 { // RIP-relative
			return 0, 0, false
		}
		return 0, 1, true
	case 1:
		if len(code) < 2 {
			return 0, 0, false
		}
		return int32(int8(code[1])), 2, true
	case 2:
		if len(code) < 5 {
			return 0, 0, false
		}
		return int32(binary.LittleEndian.Uint32(code[1:5])), 5, true
	}
	return 0, 0, false
}

// movLoad decodes mov disp(base),%rax (wide) or mov disp(base),%eax.
func movLoad(code []byte, base byte, wide bool) (int32, int, bool) {
	i := 0
	if wide {
		if len(code) < 1 || code[0] != 0x48 {
			return 0, 0, false
		}
		i = 1
	}
	if len(code) < i+1 || code[i] != 0x8b {
		return 0, 0, false
	}
	d, n, ok := modrmDisp(code[i+1:], regRAX, base)
	return d, i + 1 + n, ok
}

// movRSIToRDI decodes mov %rsi,disp(%rdi) at the start of code and
// returns its displacement.
func movRSIToRDI(code []byte) (int32, bool) {
	if len(code) < 2 || code[0] != 0x48 || code[1] != 0x89 {
		return 0, false
	}
	d, _, ok := modrmDisp(code[2:], regRSI, regRDI)
	return d, ok
}

// leaRDI decodes lea disp(%rdi),%rax.
func leaRDI(code []byte) (int32, int, bool) {
	if len(code) < 2 || code[0] != 0x48 || code[1] != 0x8d {
		return 0, 0, false
	}
	d, n, ok := modrmDisp(code[2:], regRAX, regRDI)
	return d, 2 + n, ok
}

// addRAX decodes add $imm8,%rax or add $imm32,%rax, or nothing at all (an
// offset of 0).
func addRAX(code []byte) (int32, int, bool) {
	switch {
	case len(code) >= 4 && code[0] == 0x48 && code[1] == 0x83 && code[2] == 0xc0:
		return int32(int8(code[3])), 4, true
	case len(code) >= 6 && code[0] == 0x48 && code[1] == 0x05:
		return int32(binary.LittleEndian.Uint32(code[2:6])), 6, true
	case isRet(code):
		return 0, 0, true
	}
	return 0, 0, false
}

// movStoreImm decodes movl $imm32,disp(base).
func movStoreImm(code []byte, base byte) (disp int32, imm uint32, n int, ok bool) {
	if len(code) < 1 || code[0] != 0xc7 {
		return 0, 0, 0, false
	}
	d, m, ok := modrmDisp(code[1:], 0, base)
	if !ok || len(code) < 1+m+4 {
		return 0, 0, 0, false
	}
	return d, binary.LittleEndian.Uint32(code[1+m:]), 1 + m + 4, true
}

// isRet reports whether code starts with ret (or repz ret).
func isRet(code []byte) bool {
	return len(code) > 0 && (code[0] == 0xc3 || (len(code) > 1 && code[0] == 0xf3 && code[1] == 0xc3))
}

// parseOffsets parses the offsets attribute: "name=value" items, value in
// decimal or 0x hex, -1 to leave a member unread.
func parseOffsets(items []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, it := range items {
		name, val, ok := strings.Cut(it, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok {
			return nil, fmt.Errorf("%q is not name=offset", it)
		}
		if !slices.ContainsFunc(offsetNames, func(o struct{ name, constant string }) bool { return o.name == name }) {
			var names []string
			for _, o := range offsetNames {
				names = append(names, o.name)
			}
			return nil, fmt.Errorf("%q: unknown offset %q, known: %s", it, name, strings.Join(names, ", "))
		}
		v, err := strconv.ParseInt(val, 0, 32)
		if err != nil || v < -1 {
			return nil, fmt.Errorf("%q: %q is not an offset (decimal or 0x hex, or -1 for none)", it, val)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%q: %s set twice", it, name)
		}
		out[name] = v
	}
	return out, nil
}

// apply sets the members named in over.
func (l *layout) apply(over map[string]int64) {
	for i, f := range l.fields() {
		if v, ok := over[offsetNames[i].name]; ok {
			*f = v
		}
	}
}
