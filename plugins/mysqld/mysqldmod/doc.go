// Package mysqldmod is the mysqld capture module: every command a MariaDB
// server executes, with its text, its connection, how long it took and how
// it ended.
//
// # Probes (kern/mysqld_kern.c)
//
// The server runs every command a client sends through dispatch_command
// (sql_parse.cc): an entry uprobe reads the command and its packet, a
// return uprobe the outcome from the THD's Diagnostics_area, and an entry
// uprobe on Prepared_statement::execute_loop (and execute_bulk_loop) the
// text of the prepared statement an EXECUTE runs. One event per command:
//
//   - Kind: the command, enum_server_command without COM_ in lower case:
//     "query" (COM_QUERY, one per statement the mariadb client sends),
//     "stmt_prepare", "stmt_execute", "stmt_close", "init_db", "ping",
//     "quit"...
//   - Payload: the statement's text, complete however long (sent in 16
//     KiB chunks and joined here, up to 32 MiB; MariaDB's default
//     max_allowed_packet is 16 MiB): the packet of COM_QUERY,
//     COM_STMT_PREPARE and COM_INIT_DB; for COM_STMT_EXECUTE (the binary
//     protocol of drivers such as go-sql-driver/mysql, JDBC, mysqlclient
//     with server-side statements) the text of the statement it executes.
//   - Conn.ID: the connection's id, what CONNECTION_ID() and SHOW
//     PROCESSLIST show.
//   - Time: when the command arrived; fields duration_us (arrival to
//     return), status ("ok" or "error"; absent for a command the server
//     does not answer, e.g. quit), error_code, sqlstate and error (the
//     message) for an error, affected_rows for an OK reply, rows_sent for
//     a result set (the slow log's count: the last statement's), warnings
//     when not 0, stmt_id for the COM_STMT_* commands, prepared_statement on a
//     query running EXECUTE (its payload is "EXECUTE s USING @a"), and
//     truncated=true when the text is incomplete (longer than 32 MiB, or a
//     chunk lost: counted).
//
// A statement that a stored procedure or a trigger runs is not dispatched:
// the CALL is the event. A COM_QUERY carrying several statements
// (CLIENT_MULTI_STATEMENTS) is one event whose outcome is the last
// statement's. A command already running when capture starts has no event
// (a return probe sees only calls entered after it was attached).
//
// # Servers, versions and layouts
//
// The binary is binary when set; otherwise the executable of the pid
// filter's process, or of the running mariadbd/mysqld processes (one
// binary: several different ones are refused, name one), or the first of
// /usr/sbin/mariadbd, /usr/sbin/mysqld... that exists. Init checks that it
// defines MariaDB's dispatch_command(enum_server_command, THD*, char*,
// uint, ...) (its mangled name, from .symtab or .dynsym: MariaDB exports
// it for plugins), and reads its release from the "10.11.19-MariaDB" text
// of its .rodata.
//
// The members read at return move between releases and builds. They are
// read from the code of the server's own plugin accessors, which every
// MariaDB 10.x and 11.x exports: thd_get_thread_id (THD::thread_id),
// thd_get_error_number and thd_get_error_message (THD::m_stmt_da and its
// m_sql_errno and m_message), thd_query_string (Statement::query_string),
// Diagnostics_area::disable_status (m_status, and the value of
// DA_DISABLED, which tells MariaDB's enum from another),
// THD::set_sent_row_count (m_sent_row_count; optional: without it no
// rows_sent, and Init logs why). The rest follows
// from MariaDB's class definitions, and is checked: m_sqlstate[6] before
// m_sql_errno; m_affected_rows, m_last_insert_id, m_statement_warn_count
// and m_status after m_message[512].
//
// Known: MariaDB 10.x and 11.x on x86-64. Tested, by make test on this
// project's machines: MariaDB 10.11.19 only (Debian 12's mariadb-server
// 1:10.11.19-0+deb12u1; Debian 12 has no other MariaDB and no MySQL:
// other 10.x and 11.x releases are accepted untested); the offsets read from it are compared with those
// read by hand from its disassembly. Refused at validate, with the version
// found and the way out:
//
//   - another release (MariaDB 12, say): set server_version to the known
//     release it is closest to ("11.8") to read it as that;
//   - a build whose accessors are not the single loads expected (another
//     compiler, another architecture): the diagnostic names each one;
//     offsets gives the members (offsets = ["thd_thread_id=0x3f18", ...],
//     -1 leaves one unread: its fields are then absent);
//   - MySQL 5.7 and 8.x: recognized by their dispatch_command(THD*,
//     COM_DATA*, enum_server_command) and refused, with the version
//     found: this module does not read them, and server_version and
//     offsets do not apply (no MySQL server was at hand to test against;
//     TestMySQLRefused builds binaries of that shape);
//   - a binary without dispatch_command: not a database server, or its
//     symbols were stripped.
//
// # Config attributes
//
//	binary          the server binary; "" finds it (above)
//	server_version  read the binary as this MariaDB release ("10.11")
//	offsets         ["name=0x..."]: members not read from the code
//
// The ring buffer defaults to 16 MiB (buffer_kib): a statement's text must
// fit in it whole while the reader drains it. Loss counters, beside
// ebpfbase's (ringbuf_reserve_failed counts records, chunks and ends):
// statements_lost (commands whose end record the ring buffer could not
// take: every command is an event or counted there), calls_nested
// (dispatch_command entered while the thread's previous call had not
// returned, as MariaDB 10.2 to 10.5's COM_MULTI does: the earlier call
// gets no event; 0 on 10.11, where nothing nests), text_truncated
// (texts over 32 MiB), text_fault (chunks the kernel could not read),
// text_orphaned (texts whose call's end record was lost).
package mysqldmod
