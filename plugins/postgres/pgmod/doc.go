// Package pgmod is the PostgreSQL capture module: one event per statement
// a server executes, over the simple query protocol (psql, pgbench -M
// simple) and the extended one (Parse/Bind/Execute: JDBC, pgx, psycopg 3,
// pgbench -M prepared), with its text, duration and outcome.
//
// Events (the payload is the statement's text, as the server received it):
//
//	query    a statement of a Query message (a message holding several
//	         statements gives one event each, every one with the whole text)
//	execute  an Execute message: the text of the prepared statement, with
//	         its name in "statement" when it has one
//	parse    a Parse message that failed (a syntax error, say); the
//	         non-CO-RE object (kernels without BTF) reports it as a query
//	bind     a Bind message that failed (a bad parameter)
//
// Fields: "status" ok or error; for an error "sqlstate" (e.g. 42601) and
// "error" (the message), as sent to the client; "duration_us", from the
// message's arrival to the statement's end; "user" and "database", read
// from the backend's process title (postgres: [cluster: ]user database
// ...) once per backend; "truncated" when the text is incomplete.
//
// Text: complete however long, up to 32 MiB (the non-CO-RE object: about
// 1 MiB). A text over 16383 bytes is sent in chunks before its statement's
// record and joined here; all of them are queued at once, so the kernel
// buffer (buffer_kib, 4 MiB by default for this module) must hold the
// text. A chunk the buffer could not take is counted in
// ringbuf_reserve_failed (perf_lost for the non-CO-RE object) and its event
// marked truncated; longer texts are cut and marked too.
//
// Probes (kern/postgres_kern.c explains them): entry uprobes on
// pgstat_report_activity, pg_parse_query, pq_endmessage and an entry and
// return probe on PortalRun, exported functions of the server whose
// arguments have kept their meaning since 9.x (about six uprobe traps per
// statement of pgbench -S -M prepared); and the
// sched_process_exit tracepoint, to forget a backend's cached names when
// it exits. The protocol handlers themselves (exec_simple_query...) are
// static, not in the symbols of a stripped server.
//
// Versions: the server's major version is read from its version string
// (PG_VERSION_STR in the binary). Tested, by make test: Debian 12's
// PostgreSQL 15.18 only (Debian 12 packages no other major; the unknown-
// version tests use copies of it with the string changed). Accepted
// without testing: 12 to 17, whose probed functions and the two
// structures read (StringInfoData, PortalData's first fields) are the
// same in their sources. Another major (18, or 11 and older) is refused at
// Init (ecaphost validate) with the version found and the override:
// server_version = "17" runs the module on it as if it were that release
// (TestUnknownReleaseBinary).
//
// Limits: an error raised after a statement ended but before the server
// went idle (a deferred constraint or serialization failure at commit)
// gives a second event for the statement, with the error. A statement
// run by a function (PL/pgSQL, SPI) is part of the statement that called
// it, not an event of its own. COPY data and fast-path function calls are
// not statements.
//
// Config attributes:
//
//	binary            the server binary; "" finds it: the executables of
//	                  running postgres processes, else the installed ones
//	                  (/usr/lib/postgresql/*/bin/postgres,
//	                  /usr/pgsql-*/bin/postgres, /usr/local/pgsql/bin/postgres)
//	server_version  "" reads it from the binary; a major release ("17")
//	                  overrides it
package pgmod
