package pgmod

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

func randomMarker(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "m" + hex.EncodeToString(b)
}

// requireCluster checks privileges and returns the shared cluster.
func requireCluster(t *testing.T) *cluster {
	t.Helper()
	harness.RequirePrivileges(t)
	if _, err := pgBinDir(); err != nil {
		harness.SkipOrFail(t, "%v", err)
	}
	return sharedCluster(t)
}

// capture starts the module over the SDK's gRPC harness, probing the
// server found among running processes (the shared cluster's).
func capture(t *testing.T, mode ebpfbase.BytecodeMode, common sdk.Common) *harness.Host {
	t.Helper()
	m := ebpfbase.New(New())
	m.Bytecode = mode
	return harness.Start(t, m, sdk.Settings{Common: common})
}

// with returns the events whose text contains marker.
func with(evs []*sdk.Event, marker string) []*sdk.Event {
	var out []*sdk.Event
	for _, ev := range evs {
		if strings.Contains(string(ev.Payload), marker) {
			out = append(out, ev)
		}
	}
	return out
}

func field(ev *sdk.Event, k string) string {
	v, _ := ev.Field(k)
	return v
}

// TestStatements runs psql statements, failing ones included, with both
// objects, and checks each event: kind, text, outcome, SQLSTATE, user,
// database, duration.
func TestStatements(t *testing.T) {
	c := requireCluster(t)
	for _, tc := range []struct {
		name string
		mode ebpfbase.BytecodeMode
	}{{"CO-RE", ebpfbase.BytecodeAuto}, {"non-CO-RE", ebpfbase.BytecodeNonCORE}} {
		t.Run(tc.name, func(t *testing.T) {
			h := capture(t, tc.mode, sdk.Common{})
			mk := randomMarker(t)
			stmts := []struct{ sql, kind, status, sqlstate string }{
				{"SELECT '" + mk + "-ok' AS x, pg_sleep(0.02)", KindQuery, StatusOK, ""},
				{"SELEC '" + mk + "-syntax'", KindQuery, StatusError, "42601"},
				{"SELECT 1/0 AS " + mk + "_div", KindQuery, StatusError, "22012"},
				{"SELECT * FROM " + mk + "_missing", KindQuery, StatusError, "42P01"},
				{"CREATE TEMP TABLE " + mk + "_t(i int)", KindQuery, StatusOK, ""},
				// EXECUTE runs the prepared statement in a nested portal: one event.
				{"PREPARE " + mk + "_p AS SELECT 1", KindQuery, StatusOK, ""},
				{"EXECUTE " + mk + "_p", KindQuery, StatusOK, ""},
				// An error a PL/pgSQL block catches is not the statement's.
				{"DO $$BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN NULL; END$$ /* " + mk + " */", KindQuery, StatusOK, ""},
				{"DO $$BEGIN PERFORM 1/0; END$$ /* " + mk + " */", KindQuery, StatusError, "22012"},
			}
			var sql []string
			for _, s := range stmts {
				sql = append(sql, s.sql)
			}
			// Two statements in one Query message: an event each.
			multi := "SELECT 1 AS " + mk + "_a; SELECT 2 AS " + mk + "_b"
			sql = append(sql, multi)
			out := c.psql(t, sql...)
			if !strings.Contains(out, "division by zero") {
				t.Fatalf("psql did not run the statements: %s", out)
			}
			// Every statement's event, multi's two included; the count is
			// checked exactly below.
			harness.Poll(10*time.Second, func() bool { return len(with(h.Events(), mk)) >= len(stmts)+2 })
			evs := with(h.Events(), mk)
			for _, s := range stmts {
				var ev *sdk.Event
				for _, e := range evs {
					if string(e.Payload) == s.sql {
						ev = e
					}
				}
				if ev == nil {
					t.Errorf("no event for %q: %s", s.sql, harness.Describe(evs))
					continue
				}
				if ev.Kind != s.kind || field(ev, FieldStatus) != s.status || field(ev, FieldSQLState) != s.sqlstate {
					t.Errorf("%q: kind %s status %s sqlstate %q, want %s %s %q: %s", s.sql, ev.Kind, field(ev, FieldStatus),
						field(ev, FieldSQLState), s.kind, s.status, s.sqlstate, harness.Describe([]*sdk.Event{ev}))
				}
				if s.status == StatusError && field(ev, FieldError) == "" {
					t.Errorf("%q: no error message: %+v", s.sql, ev.Fields)
				}
				if field(ev, FieldUser) != "postgres" || field(ev, FieldDatabase) != "postgres" || ev.Comm != "postgres" || ev.UID != c.uid {
					t.Errorf("%q: user %q database %q comm %q uid %d", s.sql, field(ev, FieldUser), field(ev, FieldDatabase), ev.Comm, ev.UID)
				}
				if _, err := strconv.ParseUint(field(ev, FieldDuration), 10, 64); err != nil {
					t.Errorf("%q: duration %q", s.sql, field(ev, FieldDuration))
				}
			}
			if ok := with(evs, mk+"-ok"); len(ok) == 1 {
				if us, _ := strconv.Atoi(field(ok[0], FieldDuration)); us < 20000 || us > 5000000 {
					t.Errorf("pg_sleep(0.02) took %d µs", us)
				}
			}
			if n := len(with(evs, mk+"_a; SELECT 2")); n != 2 {
				t.Errorf("%d events for the two statements of one Query, want 2: %s", n, harness.Describe(evs))
			}
			t.Logf("events: %s", harness.Describe(evs))
			if n := len(evs); n != len(stmts)+2 {
				t.Errorf("%d events, want %d: %s", n, len(stmts)+2, harness.Describe(evs))
			}
			h.Stop(t)
			for _, ctr := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors} {
				if n := h.Losses()[ctr]; n != 0 {
					t.Errorf("%s = %d", ctr, n)
				}
			}
		})
	}
}

var processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)

// TestPgbench runs pgbench with a script of three statements over the
// simple and the extended (prepared) protocol: the events must number
// pgbench's transactions times three, all ok, of the protocol's kind.
func TestPgbench(t *testing.T) {
	c := requireCluster(t)
	h := capture(t, ebpfbase.BytecodeAuto, sdk.Common{})
	for _, tc := range []struct {
		mode, kind string
		named      bool
	}{{"simple", KindQuery, false}, {"prepared", KindExecute, true}} {
		t.Run(tc.mode, func(t *testing.T) {
			mk := randomMarker(t)
			script := filepath.Join(c.dir, mk+".sql")
			body := "\\set n random(1, 1000)\n" +
				"BEGIN /* " + mk + " */;\n" +
				"SELECT :n + 1 AS " + mk + ";\n" +
				"END /* " + mk + " */;\n"
			if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			const perTxn = 3
			out, err := c.run("pgbench", "-n", "-M", tc.mode, "-c", "2", "-t", "25", "-f", script)
			if err != nil {
				t.Fatalf("pgbench: %v\n%s", err, out)
			}
			m := processedRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("pgbench output has no transaction count:\n%s", out)
			}
			txns, _ := strconv.Atoi(string(m[1]))
			want := txns * perTxn
			ok := harness.Poll(10*time.Second, func() bool { return len(with(h.Events(), mk)) >= want })
			evs := with(h.Events(), mk)
			t.Logf("pgbench -M %s: %d transactions, %d statement events", tc.mode, txns, len(evs))
			if !ok || len(evs) != want {
				t.Fatalf("%d events, want %d transactions × %d statements = %d", len(evs), txns, perTxn, want)
			}
			for _, ev := range evs {
				if ev.Kind != tc.kind || field(ev, FieldStatus) != StatusOK || (field(ev, FieldStatement) != "") != tc.named {
					t.Fatalf("event %s: want kind %s, ok, named %v", harness.Describe([]*sdk.Event{ev}), tc.kind, tc.named)
				}
			}
		})
	}
	// A Parse that fails: its own event, kind parse, with the SQLSTATE.
	t.Run("parse error", func(t *testing.T) {
		mk := randomMarker(t)
		script := filepath.Join(c.dir, mk+".sql")
		if err := os.WriteFile(script, []byte("SELEC 1 AS "+mk+";\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.run("pgbench", "-n", "-M", "prepared", "-t", "1", "-f", script); err == nil {
			t.Fatalf("pgbench ran a syntax error:\n%s", out)
		}
		ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return strings.Contains(string(ev.Payload), mk) })
		if ev.Kind != KindParse || field(ev, FieldSQLState) != "42601" || field(ev, FieldStatus) != StatusError {
			t.Errorf("event %s, want a parse error 42601", harness.Describe([]*sdk.Event{ev}))
		}
	})
	h.Stop(t)
	if n := h.Losses()[ebpfbase.CounterReserveFailed]; n != 0 {
		t.Errorf("%s = %d", ebpfbase.CounterReserveFailed, n)
	}
}

// TestFilters: the comm filter on postgres captures, a uid other than
// the server's captures nothing.
func TestFilters(t *testing.T) {
	c := requireCluster(t)
	for _, tc := range []struct {
		name    string
		common  sdk.Common
		capture bool
	}{
		{"comm postgres", sdk.Common{Comm: "postgres"}, true},
		{"uid of the server", sdk.Common{UID: c.uid}, true},
		{"uid other", sdk.Common{UID: 4242}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := capture(t, ebpfbase.BytecodeAuto, tc.common)
			mk := randomMarker(t)
			c.psql(t, "SELECT '"+mk+"'")
			got := harness.Poll(2*time.Second, func() bool { return len(with(h.Events(), mk)) > 0 })
			if got != tc.capture {
				t.Errorf("captured %v, want %v", got, tc.capture)
			}
		})
	}
}

// TestDiscovery: with binary unset, Init finds the running cluster's
// server and its version.
func TestDiscovery(t *testing.T) {
	c := requireCluster(t)
	m := New()
	if err := m.Init(t.Context(), hclog.NewNullLogger(), sdk.Settings{CheckOnly: true}, nil); err != nil {
		t.Fatal(err)
	}
	want, _ := os.Stat(c.postgres())
	found := false
	for _, s := range m.servers {
		if st, err := os.Stat(s.path); err == nil && os.SameFile(st, want) {
			found = true
			if s.major < minMajor || s.major > maxMajor || !strings.HasPrefix(s.version, strconv.Itoa(s.major)) {
				t.Errorf("server %+v", s)
			}
		}
	}
	if !found {
		t.Errorf("servers %+v do not include %s", m.servers, c.postgres())
	}
}

// TestCgroupFilter moves one backend into a cgroup v2 directory of its
// own and filters on that cgroup: only its statements are captured.
func TestCgroupFilter(t *testing.T) {
	c := requireCluster(t)
	mount, err := cgroup.Mount("/proc/mounts")
	if err != nil {
		harness.SkipOrFail(t, "the cgroup filter needs a cgroup2 hierarchy: %v", err)
	}
	dir, err := os.MkdirTemp(mount, "ecaphost-pg-test-")
	if err != nil {
		harness.SkipOrFail(t, "creating a cgroup: %v", err)
	}
	// A psql session kept open: its backend is the one moved. Cleanups
	// run last first: psql quits, its backend exits, the cgroup empties.
	t.Cleanup(func() { harness.Poll(5*time.Second, func() bool { return os.Remove(dir) == nil }) })
	backend, run := c.session(t)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(backend), 0o644); err != nil {
		t.Fatalf("moving backend %q into %s: %v", backend, dir, err)
	}
	id, level, err := cgroup.ID(mount, strings.TrimPrefix(dir, mount))
	if err != nil {
		t.Fatal(err)
	}
	h := capture(t, ebpfbase.BytecodeAuto, sdk.Common{CgroupID: id, CgroupLevel: level, CgroupPath: dir})
	mk := randomMarker(t)
	c.psql(t, "SELECT '"+mk+"-out'")
	run("SELECT '" + mk + "-in'")
	ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return strings.Contains(string(ev.Payload), mk+"-in") })
	if strconv.Itoa(int(ev.PID)) != backend {
		t.Errorf("event of pid %d, the moved backend is %s", ev.PID, backend)
	}
	h.Stop(t)
	if out := with(h.Events(), mk+"-out"); len(out) != 0 {
		t.Errorf("a backend outside cgroup %s was captured: %s", dir, harness.Describe(out))
	}
}

// longSQL returns a statement of exactly n bytes holding marker, a
// SELECT of one long literal, or a syntax error when bad is set.
func longSQL(marker string, n int, bad bool) string {
	head := "SELECT length('" + marker + " "
	if bad {
		head = "SELEC length('" + marker + " "
	}
	tail := "') AS " + marker
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len() < n-len(tail); i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[i%36])
	}
	b.WriteString(tail)
	return b.String()
}

// TestLongStatements: statements over 64 KiB, from psql (simple protocol)
// and pgbench -M prepared (extended), arrive whole and byte-exact with
// both objects, an error's fields included.
func TestLongStatements(t *testing.T) {
	c := requireCluster(t)
	for _, tc := range []struct {
		name string
		mode ebpfbase.BytecodeMode
	}{{"CO-RE", ebpfbase.BytecodeAuto}, {"non-CO-RE", ebpfbase.BytecodeNonCORE}} {
		t.Run(tc.name, func(t *testing.T) {
			h := capture(t, tc.mode, sdk.Common{})
			mk := randomMarker(t)
			ok := longSQL(mk+"_ok", 100_000, false)
			exact := longSQL(mk+"_exact", 5*(chunkMax-1), false) // a whole number of chunks
			bad := longSQL(mk+"_bad", 70_000, true)
			out := c.psql(t, ok, exact, bad)
			if !strings.Contains(out, "99") || !strings.Contains(out, "syntax error") {
				t.Fatalf("psql did not run the statements: %s", out)
			}
			prepared := longSQL(mk+"_prep", 90_000, false)
			script := filepath.Join(c.dir, mk+".sql")
			if err := os.WriteFile(script, []byte(prepared+";\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := c.run("pgbench", "-n", "-M", "prepared", "-t", "3", "-f", script); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, out)
			}
			want := []struct {
				sql, kind, status string
				count             int
			}{{ok, KindQuery, StatusOK, 1}, {exact, KindQuery, StatusOK, 1}, {bad, KindQuery, StatusError, 1}, {prepared + ";", KindExecute, StatusOK, 3}}
			harness.Poll(15*time.Second, func() bool { return len(with(h.Events(), mk)) >= 6 })
			evs := with(h.Events(), mk)
			if len(evs) != 6 {
				t.Errorf("%d events, want 6", len(evs))
			}
			for _, w := range want {
				n := 0
				for _, ev := range evs {
					if string(ev.Payload) != w.sql {
						continue
					}
					n++
					if ev.Kind != w.kind || field(ev, FieldStatus) != w.status {
						t.Errorf("%d-byte statement: kind %s status %s, want %s %s", len(w.sql), ev.Kind, field(ev, FieldStatus), w.kind, w.status)
					}
					if _, cut := ev.Field(FieldTruncated); cut {
						t.Errorf("%d-byte statement marked truncated", len(w.sql))
					}
					if w.status == StatusError && field(ev, FieldSQLState) != "42601" {
						t.Errorf("long syntax error: sqlstate %q, want 42601", field(ev, FieldSQLState))
					}
				}
				if n != w.count {
					for _, ev := range evs {
						if strings.HasPrefix(string(ev.Payload), w.sql[:40]) {
							t.Logf("event of %d bytes, fields %v", len(ev.Payload), ev.Fields)
						}
					}
					t.Errorf("%d-byte %s statement: %d byte-exact events, want %d", len(w.sql), w.kind, n, w.count)
				}
			}
			h.Stop(t)
			for _, ctr := range []string{ebpfbase.CounterReserveFailed, ebpfbase.CounterDecodeErrors} {
				if n := h.Losses()[ctr]; n != 0 {
					t.Errorf("%s = %d", ctr, n)
				}
			}
		})
	}
}

// TestUserAndDatabase: a backend of another role and database reports
// them, read from its process title.
func TestUserAndDatabase(t *testing.T) {
	c := requireCluster(t)
	mk := randomMarker(t)
	role, db := "u_"+mk, "d_"+mk
	c.psql(t, "CREATE ROLE "+role+" LOGIN", "CREATE DATABASE "+db+" OWNER "+role)
	t.Cleanup(func() { c.psql(t, "DROP DATABASE IF EXISTS "+db, "DROP ROLE IF EXISTS "+role) })
	h := capture(t, ebpfbase.BytecodeAuto, sdk.Common{})
	if out, err := c.run("psql", "-X", "-q", "-A", "-t", "-U", role, "-d", db, "-c", "SELECT current_user AS "+mk+"_who", "-c", "SELEC "+mk+"_bad"); !strings.Contains(string(out), role) {
		t.Fatalf("psql as %s: %v\n%s", role, err, out)
	}
	for _, want := range []struct{ text, status string }{{"SELECT current_user AS " + mk + "_who", StatusOK}, {"SELEC " + mk + "_bad", StatusError}} {
		ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return string(ev.Payload) == want.text })
		if field(ev, FieldUser) != role || field(ev, FieldDatabase) != db || field(ev, FieldStatus) != want.status {
			t.Errorf("%q: user %q database %q status %q, want %s %s %s", want.text, field(ev, FieldUser), field(ev, FieldDatabase), field(ev, FieldStatus), role, db, want.status)
		}
	}
	h.Stop(t)
}

// session starts a psql session kept open until the test ends, and
// returns its backend's pid and a function running one statement in it.
func (c *cluster) session(t *testing.T) (backend string, run func(sql string)) {
	t.Helper()
	cmd := c.command("psql", "-X", "-q", "-A", "-t")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // psql quits, its backend exits
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	run = func(sql string) {
		t.Helper()
		if _, err := io.WriteString(stdin, sql+";\n"); err != nil || !lines.Scan() {
			t.Fatalf("running %q in a psql session: %v %v", sql, err, lines.Err())
		}
	}
	run("SELECT pg_backend_pid()")
	return strings.TrimSpace(lines.Text()), run
}

// TestPIDFilter: a pid filter on one backend captures its statements, not
// another backend's.
func TestPIDFilter(t *testing.T) {
	c := requireCluster(t)
	backend, run := c.session(t)
	pid, err := strconv.ParseUint(backend, 10, 32)
	if err != nil {
		t.Fatalf("backend pid %q: %v", backend, err)
	}
	h := capture(t, ebpfbase.BytecodeAuto, sdk.Common{PID: uint32(pid)})
	mk := randomMarker(t)
	c.psql(t, "SELECT '"+mk+"-out'")
	run("SELECT '" + mk + "-in'")
	ev := h.WaitFor(t, 10*time.Second, func(ev *sdk.Event) bool { return strings.Contains(string(ev.Payload), mk+"-in") })
	if uint64(ev.PID) != pid {
		t.Errorf("event of pid %d, the filter's is %d", ev.PID, pid)
	}
	h.Stop(t)
	if out := with(h.Events(), mk+"-out"); len(out) != 0 {
		t.Errorf("another backend was captured: %s", harness.Describe(out))
	}
}
