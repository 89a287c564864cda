package mysqldmod

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/plugins/mysqld/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// TestRecordLayout proves that textRecord and doneRecord have the layout
// of struct mysqld_text and struct mysqld_done in the object, and that the
// decoder's offsets are theirs.
func TestRecordLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		v    any
	}{{"mysqld_text", textRecord{}}, {"mysqld_done", doneRecord{}}, {"ecap_hdr", ebpfbase.Header{}}} {
		if err := ebpfbase.CheckLayout(bpf.Core, c.name, c.v); err != nil {
			t.Error(err)
		}
	}
	var tr textRecord
	var dr doneRecord
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"text start", offTextStart, unsafe.Offsetof(tr.StartNs)},
		{"text total", offTextTotal, unsafe.Offsetof(tr.Total)},
		{"text offset", offTextOff, unsafe.Offsetof(tr.Offset)},
		{"text part", offTextPart, unsafe.Offsetof(tr.Part)},
		{"text data", offTextData, unsafe.Offsetof(tr.Data)},
		{"done start", offDoneStart, unsafe.Offsetof(dr.StartNs)},
		{"done thread", offDoneThread, unsafe.Offsetof(dr.ThreadID)},
		{"done affected", offDoneAffected, unsafe.Offsetof(dr.AffectedRows)},
		{"done text len", offDoneTextLen, unsafe.Offsetof(dr.TextLen)},
		{"done prepared len", offDonePrepLen, unsafe.Offsetof(dr.PreparedLen)},
		{"done rows sent", offDoneSent, unsafe.Offsetof(dr.RowsSent)},
		{"done command", offDoneCommand, unsafe.Offsetof(dr.Command)},
		{"done stmt id", offDoneStmtID, unsafe.Offsetof(dr.StmtID)},
		{"done da status", offDoneDAStatus, unsafe.Offsetof(dr.DAStatus)},
		{"done errno", offDoneErrno, unsafe.Offsetof(dr.SQLErrno)},
		{"done warnings", offDoneWarnings, unsafe.Offsetof(dr.Warnings)},
		{"done sqlstate", offDoneSQLState, unsafe.Offsetof(dr.SQLState)},
		{"done message", offDoneMessage, unsafe.Offsetof(dr.Message)},
	} {
		if o.got != o.want {
			t.Errorf("%s: decoder offset %d, record has %d", o.name, o.got, o.want)
		}
	}
}

// TestObject checks what Start relies on: the programs, the maps, the
// filter constants, and one const volatile per layout member.
func TestObject(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.Core))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"uprobe_dispatch_command", "uretprobe_dispatch_command", "uprobe_execute_loop"} {
		if _, ok := cs.Programs[p]; !ok {
			t.Errorf("program %s missing", p)
		}
	}
	consts := []string{ebpfbase.ConstTargetPID, ebpfbase.ConstTargetUID, ebpfbase.ConstTargetComm}
	for _, o := range offsetNames {
		consts = append(consts, o.constant)
	}
	for _, v := range consts {
		if vs, ok := cs.Variables[v]; !ok || !vs.Constant() {
			t.Errorf("constant %s missing or not const", v)
		}
	}
	if em := cs.Maps[ebpfbase.EventsMap]; em == nil || em.Type != ebpf.RingBuf {
		t.Errorf("map %s is not a ring buffer", ebpfbase.EventsMap)
	}
	if sm := cs.Maps[statsMap]; sm == nil || sm.Type != ebpf.PerCPUArray || sm.MaxEntries <= statNested {
		t.Errorf("map %s is not a per-CPU array of %d counters", statsMap, statNested+1)
	}
	if len(unknownLayout().constants()) != len(offsetNames) {
		t.Error("layout and offsetNames differ in length")
	}
}

// TestReadLayoutDebian reads the layout of Debian's MariaDB 10.11 server
// and compares it with the offsets read by hand from its disassembly
// (thd_get_thread_id, thd_get_error_number, thd_get_error_message,
// thd_query_string, Diagnostics_area::disable_status and set_ok_status of
// mariadb-server 1:10.11.19-0+deb12u1, amd64).
func TestReadLayoutDebian(t *testing.T) {
	if _, err := os.Stat(debianServer); err != nil {
		t.Skipf("%s: %v", debianServer, err)
	}
	v, err := readVersion(debianServer)
	if err != nil {
		t.Fatal(err)
	}
	if !v.maria || !knownVersion(v.major) {
		t.Fatalf("version %+v", v)
	}
	l, missing, err := readLayout(debianServer, nil)
	if err != nil || len(missing) > 0 {
		t.Fatalf("%v; unread: %v", err, missing)
	}
	if v.text != "10.11.19-MariaDB" {
		t.Logf("%s is MariaDB %s: the offsets below are those of 10.11.19, not compared", debianServer, v)
		return
	}
	want := layout{THDThreadID: 0x3f18, THDStmtDA: 0x62e0, DASQLState: 0, DAErrno: 8, DAMessage: 0x1a,
		DAAffectedRows: 0x220, DAWarnCount: 0x230, DAStatus: 0x234, StmtQueryString: 0x68,
		THDSentRows: 0x3b98}
	if l != want {
		t.Errorf("layout\n%s, want\n%s", l, want)
	}
}

// TestDecodeCode checks the instruction decoders on the encodings a
// compiler picks (8- and 32-bit displacements, no displacement) and
// refuses the others.
func TestDecodeCode(t *testing.T) {
	if d, n, ok := movLoad([]byte{0x48, 0x8b, 0x87, 0x18, 0x3f, 0, 0, 0xc3}, regRDI, true); !ok || d != 0x3f18 || n != 7 {
		t.Errorf("mov 0x3f18(%%rdi),%%rax: %#x %d %v", d, n, ok)
	}
	if d, n, ok := movLoad([]byte{0x8b, 0x40, 0x08, 0xc3}, regRAX, false); !ok || d != 8 || n != 3 {
		t.Errorf("mov 0x8(%%rax),%%eax: %#x %d %v", d, n, ok)
	}
	if d, n, ok := movLoad([]byte{0x48, 0x8b, 0x07}, regRDI, true); !ok || d != 0 || n != 3 {
		t.Errorf("mov (%%rdi),%%rax: %#x %d %v", d, n, ok)
	}
	if _, _, ok := movLoad([]byte{0x48, 0x8b, 0x05, 1, 2, 3, 4}, regRDI, true); ok {
		t.Error("RIP-relative load accepted")
	}
	if _, _, ok := movLoad([]byte{0x48, 0x8b, 0x86, 1, 2, 3, 4}, regRDI, true); ok {
		t.Error("load from %rsi accepted as from %rdi")
	}
	if _, _, ok := movLoad([]byte{0x48, 0x8b}, regRDI, true); ok {
		t.Error("short code accepted")
	}
	if d, n, ok := leaRDI([]byte{0x48, 0x8d, 0x47, 0x68, 0xc3}); !ok || d != 0x68 || n != 4 {
		t.Errorf("lea 0x68(%%rdi),%%rax: %#x %d %v", d, n, ok)
	}
	if d, n, ok := addRAX([]byte{0x48, 0x83, 0xc0, 0x1a, 0xc3}); !ok || d != 0x1a || n != 4 {
		t.Errorf("add $0x1a,%%rax: %#x %d %v", d, n, ok)
	}
	if d, n, ok := addRAX([]byte{0x48, 0x05, 0x00, 0x01, 0, 0, 0xc3}); !ok || d != 0x100 || n != 6 {
		t.Errorf("add $0x100,%%rax: %#x %d %v", d, n, ok)
	}
	if d, v, n, ok := movStoreImm([]byte{0xc7, 0x87, 0x34, 0x02, 0, 0, 6, 0, 0, 0, 0xc3}, regRDI); !ok || d != 0x234 || v != 6 || n != 10 {
		t.Errorf("movl $6,0x234(%%rdi): %#x %d %d %v", d, v, n, ok)
	}
	if d, ok := movRSIToRDI([]byte{0x48, 0x89, 0xb7, 0x98, 0x3b, 0, 0}); !ok || d != 0x3b98 {
		t.Errorf("mov %%rsi,0x3b98(%%rdi): %#x %v", d, ok)
	}
	if d, ok := movRSIToRDI([]byte{0x48, 0x89, 0x77, 0x10}); !ok || d != 0x10 {
		t.Errorf("mov %%rsi,0x10(%%rdi): %#x %v", d, ok)
	}
	if _, ok := movRSIToRDI([]byte{0x48, 0x89, 0xbe, 0x98, 0x3b, 0, 0}); ok {
		t.Error("mov %rdi,disp(%rsi) accepted")
	}
	if _, _, _, ok := movStoreImm([]byte{0xc7, 0x87, 0x34, 0x02}, regRDI); ok {
		t.Error("short store accepted")
	}
}

// TestReadLayoutNotMariaDB: a binary without the accessors gets an error
// naming each one.
func TestReadLayoutNotMariaDB(t *testing.T) {
	_, missing, err := readLayout("/bin/true", nil)
	if len(missing) != 1 {
		t.Errorf("unread optional members: %v, want the sent row counter", missing)
	}
	if err == nil {
		t.Fatal("read a layout from /bin/true")
	}
	for _, sym := range []string{symGetThreadID, symGetErrorNumber, symDisableStatus} {
		if !strings.Contains(err.Error(), sym) {
			t.Errorf("error %q does not name %s", err, sym)
		}
	}
	// Members set with offsets are not looked for.
	skip := map[string]bool{}
	for _, o := range offsetNames {
		skip[o.name] = true
	}
	if _, _, err := readLayout("/bin/true", skip); err != nil {
		t.Errorf("every member set, still: %v", err)
	}
}

func TestParseOffsets(t *testing.T) {
	got, err := parseOffsets([]string{"thd_thread_id=0x3f18", " da_errno = 8", "stmt_query_string=-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got["thd_thread_id"] != 0x3f18 || got["da_errno"] != 8 || got["stmt_query_string"] != -1 {
		t.Errorf("parsed %v", got)
	}
	for _, bad := range [][]string{{"thd_thread_id"}, {"nope=1"}, {"da_errno=x"}, {"da_errno=-2"}, {"da_errno=1", "da_errno=2"}} {
		if _, err := parseOffsets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	l := unknownLayout()
	l.apply(got)
	if l.THDThreadID != 0x3f18 || l.DAErrno != 8 || l.DAStatus != -1 {
		t.Errorf("applied: %s", l)
	}
}
