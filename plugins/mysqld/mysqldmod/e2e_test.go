package mysqldmod

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// randomMarker is harness.Marker usable as an SQL identifier (a
// database's name): underscores for its dashes.
func randomMarker(t *testing.T) string {
	return strings.ReplaceAll(harness.Marker(t), "-", "_")
}

// captureServer starts the module over the SDK's gRPC harness on the
// test server's binary, filtered on its pid.
func captureServer(t *testing.T, s *mariadb) *harness.Host {
	t.Helper()
	return harness.Start(t, ebpfbase.New(New()), sdk.Settings{
		Common: sdk.Common{PID: uint32(s.pid())},
		Config: sdk.Config{AttrBinary: debianServer},
	})
}

// captured tells whether an event with payload q arrives within 3 s.
func captured(h *harness.Host, q string) bool {
	return harness.Poll(3*time.Second, func() bool {
		for _, ev := range h.Events() {
			if string(ev.Payload) == q {
				return true
			}
		}
		return false
	})
}

// waitPayload waits for the event of kind whose payload is text.
func waitPayload(t *testing.T, h *harness.Host, kind, text string) *sdk.Event {
	t.Helper()
	return h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == kind && string(ev.Payload) == text })
}

func field(ev *sdk.Event, key string) string { v, _ := ev.Field(key); return v }

// wantFields checks fields of ev.
func wantFields(t *testing.T, ev *sdk.Event, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := ev.Field(k)
		if !ok || got != v {
			t.Errorf("%s %.80q: field %s = %q (present %v), want %q; fields %v", ev.Kind, ev.Payload, k, got, ok, v, ev.Fields)
		}
	}
}

// TestCaptureMariaDB runs statements through Debian's mariadb client
// against a throwaway server and checks each one's event: text, command,
// connection id, duration and outcome.
func TestCaptureMariaDB(t *testing.T) {
	s := startServer(t)
	h := captureServer(t, s)
	marker := randomMarker(t)

	// One client session, each statement its own COM_QUERY.
	out := s.mustQuery(t, "SELECT CONNECTION_ID();\n"+
		"CREATE DATABASE "+marker+";\n"+
		"CREATE TABLE "+marker+".t (id INT PRIMARY KEY, v VARCHAR(20));\n"+
		"INSERT INTO "+marker+".t VALUES (1,'a'),(2,'b'),(3,'c');\n"+
		"SELECT v FROM "+marker+".t WHERE id > 1;\n"+
		"SELECT SLEEP(0.2);\n")
	connID, err := strconv.ParseUint(strings.Fields(out)[0], 10, 64)
	if err != nil {
		t.Fatalf("CONNECTION_ID() from %q: %v", out, err)
	}

	insert := "INSERT INTO " + marker + ".t VALUES (1,'a'),(2,'b'),(3,'c')"
	ev := waitPayload(t, h, KindQuery, insert)
	wantFields(t, ev, map[string]string{FieldStatus: "ok", FieldAffectedRows: "3"})
	if ev.Conn.ID != connID || int(ev.PID) != s.pid() || ev.Module != Name {
		t.Errorf("insert event: conn %d pid %d module %q, want conn %d (CONNECTION_ID()) pid %d module %s", ev.Conn.ID, ev.PID, ev.Module, connID, s.pid(), Name)
	}
	ev = waitPayload(t, h, KindQuery, "SELECT v FROM "+marker+".t WHERE id > 1")
	wantFields(t, ev, map[string]string{FieldStatus: "ok", FieldRowsSent: "2"})
	ev = waitPayload(t, h, KindQuery, "SELECT SLEEP(0.2)")
	if d, err := strconv.ParseUint(field(ev, FieldDuration), 10, 64); err != nil || d < 200_000 || d > 10_000_000 {
		t.Errorf("SELECT SLEEP(0.2) lasted %s µs, want 200000 or more", field(ev, FieldDuration))
	}

	// A syntax error: the client reports it, the event carries it.
	bad := "SELEC 'syntax error " + marker + "'"
	if _, err := s.query(bad + ";\n"); err == nil || !strings.Contains(err.Error(), "1064") {
		t.Fatalf("the syntax error was not reported by the client as 1064: %v", err)
	}
	ev = waitPayload(t, h, KindQuery, bad)
	wantFields(t, ev, map[string]string{FieldStatus: "error", FieldErrorCode: "1064", FieldSQLState: "42000"})
	if msg := field(ev, FieldError); !strings.Contains(msg, "SQL syntax") || !strings.Contains(msg, "SELEC") {
		t.Errorf("error message %q, want MariaDB's syntax error message", msg)
	}

	// An error at execution: a table that does not exist.
	missing := "SELECT * FROM " + marker + ".nope"
	_, _ = s.query(missing + ";\n")
	ev = waitPayload(t, h, KindQuery, missing)
	wantFields(t, ev, map[string]string{FieldStatus: "error", FieldErrorCode: "1146", FieldSQLState: "42S02"})

	// Prepared statements in SQL: PREPARE, then EXECUTE carrying the
	// prepared statement's text.
	prep := "SELECT ? + 1 AS " + marker
	out = s.mustQuery(t, "PREPARE s FROM '"+prep+"';\nSET @a = 41;\nEXECUTE s USING @a;\n")
	if strings.TrimSpace(out) != "42" {
		t.Errorf("EXECUTE returned %q, want 42", out)
	}
	ev = waitPayload(t, h, KindQuery, "EXECUTE s USING @a")
	wantFields(t, ev, map[string]string{FieldStatus: "ok", FieldPrepared: prep})

	h.Stop(t)
	losses := h.Losses()
	for _, c := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors, CounterTruncated, CounterFault, CounterStatementsLost, CounterNested} {
		if n, ok := losses[c]; !ok || n != 0 {
			t.Errorf("counter %s = %d (reported %v), want 0", c, n, ok)
		}
	}
	for _, ev := range h.Events() {
		if _, ok := ev.Field(FieldTruncated); ok {
			t.Errorf("event marked truncated: %s", harness.Describe([]*sdk.Event{ev}))
		}
	}
}

// TestLongStatement sends statements longer than 64 KiB (the packet
// limit of a ring buffer record, and of a gRPC fragment): the event
// carries every byte.
func TestLongStatement(t *testing.T) {
	s := startServer(t)
	h := captureServer(t, s)
	for _, n := range []int{70 << 10, 1 << 20} {
		marker := randomMarker(t)
		long := "SELECT LENGTH('" + marker + strings.Repeat("0123456789abcdef", n/16) + "')"
		out := s.mustQuery(t, long+";\n")
		if strings.TrimSpace(out) != strconv.Itoa(len(marker)+n/16*16) {
			t.Fatalf("server says %q", out)
		}
		ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
			return ev.Kind == KindQuery && strings.Contains(string(ev.Payload[:min(len(ev.Payload), 64)]), marker)
		})
		if string(ev.Payload) != long {
			t.Errorf("statement of %d bytes captured as %d bytes (first difference at %d)", len(long), len(ev.Payload), firstDiff(ev.Payload, []byte(long)))
		}
		wantFields(t, ev, map[string]string{FieldStatus: "ok"})
		if _, ok := ev.Field(FieldTruncated); ok {
			t.Errorf("statement of %d bytes marked truncated", len(long))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// openDB connects go-sql-driver/mysql to the server's socket. The driver
// prepares statements with arguments through the binary protocol
// (COM_STMT_PREPARE, COM_STMT_EXECUTE).
func openDB(t *testing.T, s *mariadb) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", s.sock
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestBinaryProtocol prepares and executes a statement through the binary
// protocol: the prepare event carries its text, the execute event the same
// text and the statement id.
func TestBinaryProtocol(t *testing.T) {
	s := startServer(t)
	h := captureServer(t, s)
	db := openDB(t, s)
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var connID uint64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&connID); err != nil {
		t.Fatal(err)
	}
	marker := randomMarker(t)
	text := "SELECT ? * 2 AS " + marker
	stmt, err := conn.PrepareContext(ctx, text)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{21, 50} {
		var got int
		if err := stmt.QueryRowContext(ctx, v).Scan(&got); err != nil || got != 2*v {
			t.Fatalf("executing with %d: %d, %v", v, got, err)
		}
	}
	if err := stmt.Close(); err != nil {
		t.Fatal(err)
	}
	prep := waitPayload(t, h, KindStmtPrepare, text)
	wantFields(t, prep, map[string]string{FieldStatus: "ok"})
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return ev.Kind == "stmt_close" && ev.Conn.ID == connID })
	var execs []*sdk.Event
	for _, ev := range h.Events() {
		if ev.Kind == KindStmtExecute && ev.Conn.ID == connID {
			execs = append(execs, ev)
		}
	}
	if len(execs) != 2 {
		t.Fatalf("%d stmt_execute events of connection %d, want 2: %s", len(execs), connID, harness.Describe(h.Events()))
	}
	for _, ev := range execs {
		if string(ev.Payload) != text {
			t.Errorf("stmt_execute carries %q, want the prepared statement %q", ev.Payload, text)
		}
		wantFields(t, ev, map[string]string{FieldStatus: "ok", FieldRowsSent: "1"})
		if field(ev, FieldStmtID) == "" || field(ev, FieldStmtID) == "0" {
			t.Errorf("stmt_execute without its statement id: %v", ev.Fields)
		}
	}
	if prep.Conn.ID != connID {
		t.Errorf("stmt_prepare of connection %d, want %d", prep.Conn.ID, connID)
	}
}

// TestInterleavedConnections runs statements on two connections in turn:
// each event carries its own connection's id.
func TestInterleavedConnections(t *testing.T) {
	s := startServer(t)
	h := captureServer(t, s)
	db := openDB(t, s)
	ctx := t.Context()
	marker := randomMarker(t)
	type side struct {
		name string
		conn *sql.Conn
		id   uint64
	}
	var sides []*side
	for _, name := range []string{"a", "b"} {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sd := &side{name: name, conn: c}
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&sd.id); err != nil {
			t.Fatal(err)
		}
		sides = append(sides, sd)
	}
	if sides[0].id == sides[1].id {
		t.Fatalf("both connections have id %d", sides[0].id)
	}
	const rounds = 20
	var wg sync.WaitGroup
	for _, sd := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var s string
				q := "SELECT '" + marker + "-" + sd.name + "-" + strconv.Itoa(i) + "'"
				if err := sd.conn.QueryRowContext(context.Background(), q).Scan(&s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := "SELECT '" + marker + "-b-" + strconv.Itoa(rounds-1) + "'"
	waitPayload(t, h, KindQuery, last)
	h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return string(ev.Payload) == "SELECT '"+marker+"-a-"+strconv.Itoa(rounds-1)+"'"
	})
	seen := map[string]int{}
	for _, ev := range h.Events() {
		p := string(ev.Payload)
		if !strings.Contains(p, marker) {
			continue
		}
		for _, sd := range sides {
			if strings.Contains(p, marker+"-"+sd.name+"-") {
				seen[sd.name]++
				if ev.Conn.ID != sd.id {
					t.Errorf("%q has connection %d, want %d", p, ev.Conn.ID, sd.id)
				}
			}
		}
	}
	if seen["a"] != rounds || seen["b"] != rounds {
		t.Errorf("events: %v, want %d of each connection", seen, rounds)
	}
}

// TestFilters checks the kernel filters on the server's threads: a
// matching comm captures, another comm or uid captures nothing.
func TestFilters(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name    string
		common  sdk.Common
		capture bool
	}{
		{"comm mariadbd", sdk.Common{Comm: "mariadbd"}, true},
		{"comm other", sdk.Common{Comm: "not-mariadbd"}, false},
		{"uid other", sdk.Common{UID: 4242}, false},
		{"pid of the server", sdk.Common{PID: uint32(s.pid())}, true},
		{"pid other", sdk.Common{PID: uint32(os.Getpid())}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{Common: tc.common, Config: sdk.Config{AttrBinary: debianServer}})
			q := "SELECT '" + randomMarker(t) + "'"
			s.mustQuery(t, q+";\n")
			got := captured(h, q)
			if got != tc.capture {
				t.Errorf("captured %v, want %v", got, tc.capture)
			}
		})
	}
}

// TestLostChunksAreCounted sends a statement far larger than a 64 KiB
// ring buffer: the chunks the kernel could not queue are counted, and the
// event says its text is incomplete instead of passing it off as whole.
func TestLostChunksAreCounted(t *testing.T) {
	s := startServer(t)
	h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{
		Common: sdk.Common{PID: uint32(s.pid()), BufferKiB: 64},
		Config: sdk.Config{AttrBinary: debianServer},
	})
	marker := randomMarker(t)
	long := "SELECT LENGTH('" + marker + strings.Repeat("z", 4<<20) + "')"
	s.mustQuery(t, long+";\n")
	ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool {
		return ev.Kind == KindQuery && strings.Contains(string(ev.Payload[:min(len(ev.Payload), 64)]), marker)
	})
	if field(ev, FieldTruncated) != "true" || len(ev.Payload) >= len(long) {
		t.Errorf("event of %d bytes (statement %d), truncated=%q: want it marked truncated", len(ev.Payload), len(long), field(ev, FieldTruncated))
	}
	h.Stop(t)
	if n := h.Losses()[ebpfbase.CounterReserveFailed]; n == 0 {
		t.Errorf("%s = 0, want the chunks the ring could not take", ebpfbase.CounterReserveFailed)
	}
}

// TestCgroupFilter moves the server into a cgroup v2 directory of its own
// (and back at the end): a filter on that directory captures its
// statements, one on an empty sibling directory none.
func TestCgroupFilter(t *testing.T) {
	s := startServer(t)
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "the cgroup filter needs a cgroup2 hierarchy: %v", err)
	}
	self, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid()) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	home := ""
	for _, l := range strings.Split(string(self), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			home = filepath.Join(mount, p)
		}
	}
	if home == "" {
		harness.SkipOrFail(t, "the server's cgroup v2 is not in %s", self)
	}
	var dirs [2]string
	for i := range dirs {
		if dirs[i], err = os.MkdirTemp(mount, "ecaphost-mysqld-test-"); err != nil {
			harness.SkipOrFail(t, "creating a cgroup: %v", err)
		}
		d := dirs[i]
		t.Cleanup(func() { harness.Poll(5*time.Second, func() bool { return os.Remove(d) == nil }) })
	}
	pid := []byte(strconv.Itoa(s.pid()))
	if err := os.WriteFile(filepath.Join(dirs[0], "cgroup.procs"), pid, 0o644); err != nil {
		t.Fatalf("moving the server into %s: %v", dirs[0], err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0o644); err != nil {
			t.Errorf("moving the server back to %s: %v", home, err)
		}
	})
	for i, want := range []bool{true, false} {
		id, level, err := cgroup.ID(mount, strings.TrimPrefix(dirs[i], mount))
		if err != nil {
			t.Fatal(err)
		}
		h := harness.Start(t, ebpfbase.New(New()), sdk.Settings{
			Common: sdk.Common{CgroupID: id, CgroupLevel: level, CgroupPath: dirs[i]},
			Config: sdk.Config{AttrBinary: debianServer},
		})
		q := "SELECT '" + randomMarker(t) + "'"
		s.mustQuery(t, q+";\n")
		got := captured(h, q)
		h.Stop(t)
		if got != want {
			t.Errorf("filter on %s (the server's: %v): captured %v", dirs[i], want, got)
		}
	}
}
