// SPDX-License-Identifier: GPL-2.0
/*
 * mysqld_kern.c - the commands a MariaDB server executes: each statement's
 * text, command, connection, duration and outcome. User space:
 * plugins/mysqld/mysqldmod.
 *
 * Probes:
 *
 *   uprobe    dispatch_command         the command's packet: its text
 *   uretprobe dispatch_command         the outcome, from the THD's
 *                                      Diagnostics_area
 *   uprobe    Prepared_statement::execute_loop (and execute_bulk_loop)
 *                                      the text of the prepared statement
 *                                      an EXECUTE runs
 *
 * MariaDB 10.x/11.x: dispatch_command(enum_server_command command, THD *thd,
 * char *packet, uint packet_length, ...): the command in the first argument,
 * the THD in the second, the packet in the third and fourth.
 *
 * Records. A call of dispatch_command sends its text (the packet of
 * COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB) at entry as struct mysqld_text
 * chunks of at most MYSQLD_CHUNK_MAX bytes (part 0), and an EXECUTE the
 * prepared statement's text likewise (part 1), then one struct mysqld_done
 * at return. Records of one thread reach the ring buffer in the order they
 * were made, so user space joins the chunks of a thread and hands them out
 * with its done record; start_ns names the call in both. The text is read
 * at entry: the packet is the connection's network buffer, which the
 * command itself may reuse (LOAD DATA LOCAL reads the file through it).
 *
 * Offsets. The THD and Diagnostics_area members read at return change
 * between releases; user space reads them from the server's own accessors
 * (thd_get_thread_id, thd_get_error_number...) and sets them below before
 * load. -1 is a member not read.
 *
 * Limits: a text longer than MYSQLD_TEXT_MAX is cut there (flag, counter);
 * a chunk the ring buffer cannot take is counted in ecap_lost and its call's
 * done record says its text is incomplete; a done record it cannot take is
 * counted in ecap_lost and in mysqld_stats[MYSQLD_STAT_LOST], so that every
 * call is an event or counted. A call entered before the probes
 * were attached has no done record (uretprobes see only later calls).
 */
#include "ecap.h"

char LICENSE[] SEC("license") = "GPL";

/* MYSQLD_CHUNK_MAX is the most text one record carries (a power of two). */
#define MYSQLD_CHUNK_MAX (16 * 1024)
/* MYSQLD_TEXT_MAX is the most text one call sends; the rest is cut. */
#define MYSQLD_TEXT_MAX (32 * 1024 * 1024)
/* MYSQLD_MSG_MAX is MYSQL_ERRMSG_SIZE, the size of the error message buffer. */
#define MYSQLD_MSG_MAX 512

enum mysqld_kind {
	MYSQLD_TEXT = 1,
	MYSQLD_DONE = 2,
};

/* ecap_hdr.flags of struct mysqld_done. */
enum mysqld_flags {
	MYSQLD_F_TRUNCATED = 1 << 0,  /* a text was longer than MYSQLD_TEXT_MAX */
	MYSQLD_F_TEXT_LOST = 1 << 1,  /* a chunk was not queued or not readable */
	MYSQLD_F_THREAD_ID = 1 << 2,  /* thread_id was read */
	MYSQLD_F_DA = 1 << 3,         /* da_status, sql_errno, warnings, affected_rows were read */
	MYSQLD_F_PREPARED = 1 << 4,   /* the prepared statement's text was sent (part 1) */
	MYSQLD_F_MESSAGE = 1 << 5,    /* message holds the error message */
	MYSQLD_F_ROWS = 1 << 6,       /* rows_sent was read */
};

/* Commands (enum_server_command) whose packet is text. */
#define COM_INIT_DB 2
#define COM_QUERY 3
#define COM_STMT_PREPARE 22
/* Commands whose packet starts with a 4-byte statement or thread id. */
#define COM_PROCESS_KILL 12
#define COM_STMT_EXECUTE 23
#define COM_STMT_SEND_LONG_DATA 24
#define COM_STMT_CLOSE 25
#define COM_STMT_RESET 26
#define COM_STMT_FETCH 28
#define COM_STMT_BULK_EXECUTE 250

/* Indexes of the per-CPU counters mysqld_stats. */
enum mysqld_stat {
	MYSQLD_STAT_TRUNCATED = 0, /* texts longer than MYSQLD_TEXT_MAX */
	MYSQLD_STAT_FAULT = 1,     /* chunks that could not be read from the server */
	MYSQLD_STAT_LOST = 2,      /* calls whose end record the ring buffer could not take */
	MYSQLD_STAT_NESTED = 3,    /* calls entered while the thread's previous call was pending */
	MYSQLD_STAT_MAX = 4,
};

/* Offsets set by user space before load (see mysqldmod/layout.go); -1: not read. */
const volatile __s64 off_thd_thread_id = -1;    /* THD: my_thread_id thread_id (u64) */
const volatile __s64 off_thd_stmt_da = -1;      /* THD: Diagnostics_area *m_stmt_da */
const volatile __s64 off_da_sqlstate = -1;      /* Diagnostics_area: char m_sqlstate[6] */
const volatile __s64 off_da_errno = -1;         /* Diagnostics_area: uint m_sql_errno */
const volatile __s64 off_da_message = -1;       /* Diagnostics_area: char m_message[512] */
const volatile __s64 off_da_affected_rows = -1; /* Diagnostics_area: ulonglong m_affected_rows */
const volatile __s64 off_da_warn_count = -1;    /* Diagnostics_area: uint m_statement_warn_count */
const volatile __s64 off_da_status = -1;        /* Diagnostics_area: enum m_status */
const volatile __s64 off_stmt_query = -1;       /* Statement: LEX_CSTRING query_string */
const volatile __s64 off_thd_sent_rows = -1;     /* THD: ha_rows m_sent_row_count */
const volatile __u32 da_status_error = 5;       /* DA_ERROR of the server's enum */

/*
 * struct mysqld_text is one chunk of a call's text: hdr.len bytes of data
 * follow the fixed fields. Go twin: mysqldmod.textRecord.
 */
struct mysqld_text {
	struct ecap_hdr hdr;
	__u64 start_ns; /* the call's entry time */
	__u64 total;    /* the text's length as sent (at most MYSQLD_TEXT_MAX) */
	__u64 offset;   /* of this chunk within the text */
	__u32 part;     /* 0: the packet's text; 1: the prepared statement's */
	__u32 reserved;
	char data[MYSQLD_CHUNK_MAX];
};

/*
 * struct mysqld_done ends a call: hdr.len bytes of message follow the fixed
 * fields (no NUL). Go twin: mysqldmod.doneRecord.
 */
struct mysqld_done {
	struct ecap_hdr hdr; /* timestamp_ns: the return */
	__u64 start_ns;      /* the entry */
	__u64 thread_id;     /* the connection's id (CONNECTION_ID()) */
	__u64 affected_rows;
	__u64 text_len;      /* bytes of text sent in part 0 */
	__u64 prepared_len;  /* bytes of text sent in part 1 */
	__u64 rows_sent;     /* of the last statement, as the slow log counts them */
	__u32 command;       /* enum_server_command */
	__u32 stmt_id;       /* the packet's statement (or thread) id, see above */
	__u32 da_status;
	__u32 sql_errno;
	__u32 warnings;
	__u32 ret;           /* dispatch_command's return value */
	char sqlstate[8];
	char message[MYSQLD_MSG_MAX];
};

/* struct mysqld_call is what the entry leaves for the return, per thread. */
struct mysqld_call {
	__u64 start_ns;
	__u64 thd;
	__u64 text_len;
	__u64 prepared_len;
	__u32 command;
	__u32 stmt_id;
	__u32 flags;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct mysqld_call);
} mysqld_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MYSQLD_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mysqld_stats SEC(".maps");

ECAP_SCRATCH(mysqld_text_scratch, struct mysqld_text);
ECAP_SCRATCH(mysqld_done_scratch, struct mysqld_done);

static __always_inline void mysqld_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&mysqld_stats, &stat);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* What the chunk loop needs; lives on the stack of mysqld_send_text. */
struct mysqld_emit_ctx {
	void *ctx;
	__u64 buf;
	__u64 len;
	__u32 failed; /* a chunk was not read or not queued */
	__u32 reserved;
};

/* mysqld_emit_chunk sends chunk i of a text: a bpf_loop callback. */
static long mysqld_emit_chunk(__u64 i, void *data)
{
	struct mysqld_emit_ctx *c = data;
	struct mysqld_text *e = ecap_scratch(&mysqld_text_scratch);
	__u64 off = i * MYSQLD_CHUNK_MAX, n;

	if (!e || off >= c->len)
		return 1;
	n = c->len - off;
	if (n > MYSQLD_CHUNK_MAX)
		n = MYSQLD_CHUNK_MAX;
	if (bpf_probe_read_user(e->data, n, (void *)(c->buf + off))) {
		mysqld_count(MYSQLD_STAT_FAULT);
		c->failed = 1;
		return 1;
	}
	e->hdr.len = n;
	e->offset = off;
	if (ecap_output(c->ctx, e, __builtin_offsetof(struct mysqld_text, data) + n))
		c->failed = 1;
	return 0;
}

/*
 * mysqld_send_text sends the len bytes at buf as part of call cl and
 * returns how many it sent, setting cl's flags when it cut or lost some.
 */
static __always_inline __u64 mysqld_send_text(void *ctx, struct mysqld_call *cl, __u32 part, __u64 buf, __u64 len)
{
	struct mysqld_emit_ctx c = {.ctx = ctx, .buf = buf, .len = len};
	struct mysqld_text *e;

	if (!len || !buf)
		return 0;
	e = ecap_scratch(&mysqld_text_scratch);
	if (!e)
		return 0;
	ecap_fill_hdr(&e->hdr, MYSQLD_TEXT);
	e->start_ns = cl->start_ns;
	e->part = part;
	e->reserved = 0;
	if (len > MYSQLD_TEXT_MAX) {
		c.len = MYSQLD_TEXT_MAX;
		cl->flags |= MYSQLD_F_TRUNCATED;
		mysqld_count(MYSQLD_STAT_TRUNCATED);
	}
	e->total = c.len;
	if (c.len <= MYSQLD_CHUNK_MAX)
		mysqld_emit_chunk(0, &c); /* the usual case: no loop set-up */
	else
		bpf_loop((c.len + MYSQLD_CHUNK_MAX - 1) / MYSQLD_CHUNK_MAX, mysqld_emit_chunk, &c, 0);
	if (c.failed)
		cl->flags |= MYSQLD_F_TEXT_LOST;
	return c.len;
}

static __always_inline bool mysqld_text_command(__u32 command)
{
	return command == COM_QUERY || command == COM_STMT_PREPARE || command == COM_INIT_DB;
}

static __always_inline bool mysqld_id_command(__u32 command)
{
	switch (command) {
	case COM_PROCESS_KILL:
	case COM_STMT_EXECUTE:
	case COM_STMT_SEND_LONG_DATA:
	case COM_STMT_CLOSE:
	case COM_STMT_RESET:
	case COM_STMT_FETCH:
	case COM_STMT_BULK_EXECUTE:
		return true;
	}
	return false;
}

SEC("uprobe/dispatch_command")
int BPF_UPROBE(uprobe_dispatch_command, __u32 command, void *thd, const char *packet, __u32 packet_length)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct mysqld_call cl = {};

	if (ecap_filtered())
		return 0;
	/*
	 * A call of this thread still pending: dispatch_command entered
	 * from within itself (COM_MULTI, MariaDB 10.2 to 10.5). Its state
	 * is replaced and the pending call gets no event: counted.
	 */
	if (bpf_map_lookup_elem(&mysqld_calls, &id))
		mysqld_count(MYSQLD_STAT_NESTED);
	cl.start_ns = bpf_ktime_get_ns();
	cl.thd = (__u64)thd;
	cl.command = command;
	if (mysqld_id_command(command) && packet_length >= 4)
		bpf_probe_read_user(&cl.stmt_id, sizeof(cl.stmt_id), packet);
	if (mysqld_text_command(command))
		cl.text_len = mysqld_send_text(ctx, &cl, 0, (__u64)packet, packet_length);
	bpf_map_update_elem(&mysqld_calls, &id, &cl, BPF_ANY);
	return 0;
}

/*
 * Prepared_statement::execute_loop(String *expanded_query, ...): this is
 * the statement; its query_string holds the text it was prepared from.
 * Only the first execution within a dispatch is sent (a reprepare runs it
 * again).
 */
SEC("uprobe/execute_loop")
int BPF_UPROBE(uprobe_execute_loop, void *stmt)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct mysqld_call *cl;
	struct {
		__u64 str;
		__u64 length;
	} q = {};

	if (off_stmt_query < 0)
		return 0;
	cl = bpf_map_lookup_elem(&mysqld_calls, &id);
	if (!cl || cl->flags & MYSQLD_F_PREPARED)
		return 0;
	if (bpf_probe_read_user(&q, sizeof(q), (char *)stmt + off_stmt_query))
		return 0;
	cl->flags |= MYSQLD_F_PREPARED;
	cl->prepared_len = mysqld_send_text(ctx, cl, 1, q.str, q.length);
	return 0;
}

/* mysqld_read_da reads the outcome from the THD's Diagnostics_area. */
static __always_inline void mysqld_read_da(struct mysqld_done *d, __u64 thd)
{
	__u64 da = 0;
	long n;

	if (off_thd_stmt_da < 0 || off_da_status < 0 || off_da_errno < 0)
		return;
	if (bpf_probe_read_user(&da, sizeof(da), (void *)(thd + off_thd_stmt_da)) || !da)
		return;
	if (bpf_probe_read_user(&d->da_status, sizeof(d->da_status), (void *)(da + off_da_status)) ||
	    bpf_probe_read_user(&d->sql_errno, sizeof(d->sql_errno), (void *)(da + off_da_errno)))
		return;
	d->hdr.flags |= MYSQLD_F_DA;
	if (off_da_affected_rows >= 0)
		bpf_probe_read_user(&d->affected_rows, sizeof(d->affected_rows), (void *)(da + off_da_affected_rows));
	if (off_da_warn_count >= 0)
		bpf_probe_read_user(&d->warnings, sizeof(d->warnings), (void *)(da + off_da_warn_count));
	if (d->da_status != da_status_error)
		return;
	if (off_da_sqlstate >= 0)
		bpf_probe_read_user(d->sqlstate, 6, (void *)(da + off_da_sqlstate));
	if (off_da_message >= 0) {
		n = bpf_probe_read_user_str(d->message, sizeof(d->message), (void *)(da + off_da_message));
		if (n > 1) {
			d->hdr.len = (__u32)(n - 1) & (MYSQLD_MSG_MAX - 1);
			d->hdr.flags |= MYSQLD_F_MESSAGE;
		}
	}
}

SEC("uretprobe/dispatch_command")
int BPF_URETPROBE(uretprobe_dispatch_command, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct mysqld_call *cl;
	struct mysqld_done *d;

	cl = bpf_map_lookup_elem(&mysqld_calls, &id);
	if (!cl)
		return 0;
	d = ecap_scratch(&mysqld_done_scratch);
	if (!d)
		goto out;
	ecap_fill_hdr(&d->hdr, MYSQLD_DONE);
	d->hdr.flags = cl->flags & (MYSQLD_F_TRUNCATED | MYSQLD_F_TEXT_LOST | MYSQLD_F_PREPARED);
	d->start_ns = cl->start_ns;
	d->thread_id = 0;
	d->affected_rows = 0;
	d->text_len = cl->text_len;
	d->prepared_len = cl->prepared_len;
	d->rows_sent = 0;
	d->command = cl->command;
	d->stmt_id = cl->stmt_id;
	d->da_status = 0;
	d->sql_errno = 0;
	d->warnings = 0;
	d->ret = (__u32)ret & 0xff; /* a bool */
	__builtin_memset(d->sqlstate, 0, sizeof(d->sqlstate));
	if (off_thd_thread_id >= 0 &&
	    bpf_probe_read_user(&d->thread_id, sizeof(d->thread_id), (void *)(cl->thd + off_thd_thread_id)) == 0)
		d->hdr.flags |= MYSQLD_F_THREAD_ID;
	mysqld_read_da(d, cl->thd);
	if (off_thd_sent_rows >= 0 &&
	    bpf_probe_read_user(&d->rows_sent, sizeof(d->rows_sent), (void *)(cl->thd + off_thd_sent_rows)) == 0)
		d->hdr.flags |= MYSQLD_F_ROWS;
	if (ecap_output(ctx, d, __builtin_offsetof(struct mysqld_done, message) + (d->hdr.len & (MYSQLD_MSG_MAX - 1))))
		mysqld_count(MYSQLD_STAT_LOST);
out:
	bpf_map_delete_elem(&mysqld_calls, &id);
	return 0;
}
