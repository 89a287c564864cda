// SPDX-License-Identifier: GPL-2.0
// ecap:noncore (reads no kernel struct: also built for kernels without BTF)
/*
 * postgres_kern.c - the statements a PostgreSQL server (12 and later)
 * executes: text, duration, outcome. User space: plugins/postgres/pgmod.
 *
 * The protocol handlers of postgres.c (exec_simple_query,
 * exec_parse_message, exec_bind_message, exec_execute_message) are static,
 * absent from a stripped server's symbols. The probes are on exported
 * functions they call, whose arguments have kept their meaning since 9.x:
 *
 *   uprobe pgstat_report_activity(state, cmd_str)
 *       STATE_RUNNING with the statement text starts every Query, Parse,
 *       Bind and Execute message (the text of the prepared statement for
 *       Bind and Execute); any other state (idle...) ends the cycle.
 *   uprobe pg_parse_query
 *       the text is parsed: a Query (or a Parse) message.
 *   uprobe/uretprobe PortalRun(portal, count, isTopLevel, ...)
 *       a top-level run is a statement executing (each statement of a
 *       multi-statement Query, or an Execute); a nested one (EXECUTE of a
 *       prepared statement in SQL) is counted so that only the top-level
 *       return ends the statement.
 *   uprobe pq_endmessage(buf)
 *       a message to the client; an 'E' (ErrorResponse) one while a
 *       statement is under way ends it with the error's fields, a 'Z'
 *       (ReadyForQuery) one ends the cycle.
 *
 * A statement that fails before it runs failed in a Parse, a Bind or a
 * Query message: the CO-RE build tells which from the process title,
 * which the server sets to "... PARSE" and "... BIND" for the first two
 * (read from the process's argv area, mm->arg_start, where PostgreSQL
 * writes it on Linux); the non-CO-RE build cannot, and reports a failed
 * parse as a query. Probing set_ps_display instead would cost three more
 * uprobe traps per transaction, and its argument, a string literal, may
 * sit in a page a probe cannot fault in.
 *
 * An error longjmps out of PortalRun: its uretprobe does not fire, the
 * ErrorResponse ends the statement instead. Per backend (tgid) pg_state
 * holds the statement under way: a pointer to its text, valid until the
 * next message, read when the record is sent.
 *
 * Text. A statement's text up to PG_TEXT_MAX - 1 bytes travels in its
 * record. A longer one is sent first, as struct pg_text chunks of at most
 * PG_CHUNK_MAX - 1 bytes, up to PG_TEXT_LIMIT (then cut: flag), all
 * named by the same text_id; the record that follows has no text, the
 * PG_F_CHUNKED flag, the text's length and its text_id. A backend is one
 * thread: its records reach the buffer in the order they were made, and
 * user space joins the chunks with the record. A chunk the buffer cannot
 * take is counted in ecap_lost; user space then sees a text shorter than
 * text_len and marks the event truncated. The CO-RE object loops with
 * bpf_loop; the non-CO-RE one, for kernels that may predate it, with a
 * bounded loop of PG_NONCORE_CHUNKS chunks.
 *
 * Structures read: StringInfoData (data, len, cursor: unchanged since 8.x)
 * and PortalData.prepStmtName (second field since 8.x).
 *
 * A backend that sent a record is remembered in pg_backends; its exit (the
 * sched_process_exit tracepoint) sends a PG_BACKEND_EXIT record, so user
 * space forgets what it cached about the pid.
 */
#include "ecap.h"

char LICENSE[] SEC("license") = "GPL";

/* Powers of two: lengths are bounded with & (MAX - 1). */
#define PG_TEXT_MAX 16384
#define PG_ERR_MAX 512
#define PG_CHUNK_MAX 16384
/* PG_TEXT_LIMIT is the most text a statement sends in chunks; the rest is cut. */
#define PG_TEXT_LIMIT (32 * 1024 * 1024)
#define PG_CHUNKS_MAX (PG_TEXT_LIMIT / (PG_CHUNK_MAX - 1) + 1)
/* PG_NONCORE_CHUNKS bounds the chunks of the non-CO-RE object (about 1 MiB). */
#define PG_NONCORE_CHUNKS 64

#define PG_STATE_RUNNING 2 /* BackendState (utils/backend_status.h) */

enum pg_kind {
	PG_STATEMENT = 1,
	PG_BACKEND_EXIT = 2,
	PG_TEXT = 3,
};

enum pg_phase {
	PG_PHASE_NONE = 0,
	PG_PHASE_PARSE = 1,   /* a Parse message */
	PG_PHASE_BIND = 2,    /* a Bind message */
	PG_PHASE_QUERY = 3,   /* a Query message (parsed by pg_parse_query) */
	PG_PHASE_EXECUTE = 4, /* an Execute message */
};

enum pg_flags {
	PG_F_TRUNCATED = 1 << 0, /* text longer than the object sends (PG_F_CHUNKED) */
	PG_F_ERROR = 1 << 1,     /* ended by an ErrorResponse: err_len bytes of it follow the text */
	PG_F_EXECUTED = 1 << 2,  /* reached a top-level PortalRun */
	PG_F_CHUNKED = 1 << 3,   /* the text was sent before, in pg_text chunks */
};

/* Statement under way in one backend. */
struct pg_state {
	__u64 start_ns;
	__u64 text;      /* char * in the backend */
	__u64 stmt_name; /* PortalData.prepStmtName: char *, NULL when unnamed */
	__u32 phase;
	__u32 depth;     /* PortalRun calls under way */
	__u32 flags;
	__u32 parsed; /* pg_parse_query seen in this message */
};

/*
 * struct pg_event is the record sent to user space: hdr.len bytes of
 * statement text, then err_len bytes of the ErrorResponse body. Go twin:
 * pgmod.record.
 */
struct pg_event {
	struct ecap_hdr hdr;
	__u64 duration_ns;
	__u64 text_id;  /* PG_F_CHUNKED: the text_id of its chunks */
	__u32 text_len; /* PG_F_CHUNKED: the text's length, as sent in chunks */
	__u32 phase;
	__u32 err_len;
	__u32 reserved;
	char stmt_name[64]; /* NUL-terminated, "" when unnamed */
	char data[PG_TEXT_MAX + PG_ERR_MAX];
};

/*
 * struct pg_text is one chunk of a long text: hdr.len bytes at offset.
 * Go twin: pgmod.textRecord.
 */
struct pg_text {
	struct ecap_hdr hdr;
	__u64 text_id; /* the time the first chunk was read */
	__u32 offset;
	__u32 reserved;
	char data[PG_CHUNK_MAX];
};

ECAP_SCRATCH(pg_scratch, struct pg_event);
ECAP_SCRATCH(pg_text_scratch, struct pg_text);

#ifndef ECAP_NONCORE
struct pg_title_buf {
	char c[256]; /* PG_TITLE_MAX */
};
ECAP_SCRATCH(pg_title, struct pg_title_buf);
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tgid */
	__type(value, struct pg_state);
} pg_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} pg_backends SEC(".maps");

/* StringInfoData (lib/stringinfo.h). */
struct pg_stringinfo {
	__u64 data;
	__s32 len;
	__s32 maxlen;
	__s32 cursor; /* the message type, between pq_beginmessage and pq_endmessage */
	__s32 pad;
};

static __always_inline __u32 pg_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* What the chunk loop needs; lives on the stack of pg_send_chunks. */
struct pg_chunk_ctx {
	void *ctx;
	__u64 text;
	__u32 len;  /* bytes read so far */
	__u32 done; /* the NUL was reached, or reading failed */
};

/*
 * pg_emit_chunk reads and sends chunk i of a text, PG_CHUNK_MAX - 1 bytes
 * or up to its NUL: a bpf_loop callback (1 stops the loop).
 */
static long pg_emit_chunk(__u64 i, void *data)
{
	struct pg_chunk_ctx *c = data;
	struct pg_text *e = ecap_scratch(&pg_text_scratch);
	__u64 off = i * (PG_CHUNK_MAX - 1);
	long n;

	if (!e || c->done)
		return 1;
	n = bpf_probe_read_user_str(e->data, PG_CHUNK_MAX, (void *)(c->text + off));
	if (n <= 1) { /* the NUL, or unreadable */
		c->done = 1;
		return 1;
	}
	e->hdr.len = (__u32)(n - 1) & (PG_CHUNK_MAX - 1);
	e->offset = (__u32)off;
	ecap_output(c->ctx, e, __builtin_offsetof(struct pg_text, data) + (e->hdr.len & (PG_CHUNK_MAX - 1)));
	c->len = (__u32)off + e->hdr.len;
	if (n < PG_CHUNK_MAX)
		c->done = 1;
	return c->done ? 1 : 0;
}

/*
 * pg_send_chunks sends the text at text in chunks named id and returns its
 * length, setting *cut when it is longer than the object sends.
 */
static __always_inline __u32 pg_send_chunks(void *ctx, __u64 text, __u64 id, bool *cut)
{
	struct pg_text *e = ecap_scratch(&pg_text_scratch);
	struct pg_chunk_ctx c = {.ctx = ctx, .text = text};

	if (!e)
		return 0;
	ecap_fill_hdr(&e->hdr, PG_TEXT);
	e->text_id = id;
	e->reserved = 0;
#ifdef ECAP_NONCORE
	for (__u32 i = 0; i < PG_NONCORE_CHUNKS; i++)
		if (pg_emit_chunk(i, &c))
			break;
#else
	bpf_loop(PG_CHUNKS_MAX, pg_emit_chunk, &c, 0);
#endif
	*cut = !c.done;
	return c.len;
}

/*
 * pg_send sends the statement st of the current backend, with err_len
 * bytes of ErrorResponse at err when err is not 0.
 */
static __always_inline void pg_send(void *ctx, struct pg_state *st, __u64 err, __u32 err_len)
{
	struct pg_event *ev = ecap_scratch(&pg_scratch);
	__u32 tgid, len = 0;
	__u8 one = 1;
	long n;

	if (!ev)
		return;
	ecap_fill_hdr(&ev->hdr, PG_STATEMENT);
	ev->duration_ns = ev->hdr.timestamp_ns - st->start_ns;
	ev->phase = st->phase;
	ev->err_len = 0;
	ev->text_id = 0;
	ev->text_len = 0;
	ev->reserved = 0;
	ev->hdr.flags = st->flags & PG_F_EXECUTED;
	ev->stmt_name[0] = 0;
	if (st->stmt_name)
		bpf_probe_read_user_str(ev->stmt_name, sizeof(ev->stmt_name), (void *)st->stmt_name);
	n = bpf_probe_read_user_str(ev->data, PG_TEXT_MAX, (void *)st->text);
	if (n > 0) {
		len = (__u32)(n - 1) & (PG_TEXT_MAX - 1);
		if (n == PG_TEXT_MAX) {
			char next = 0;

			if (bpf_probe_read_user(&next, 1, (void *)(st->text + PG_TEXT_MAX - 1)) == 0 && next) {
				bool cut = false;

				ev->text_id = bpf_ktime_get_ns();
				ev->text_len = pg_send_chunks(ctx, st->text, ev->text_id, &cut);
				ev->hdr.flags |= PG_F_CHUNKED | (cut ? PG_F_TRUNCATED : 0);
				len = 0;
			}
		}
	}
	ev->hdr.len = len;
	if (err) {
		__u32 el = err_len > PG_ERR_MAX - 1 ? PG_ERR_MAX - 1 : err_len;

		el &= PG_ERR_MAX - 1;
		ev->hdr.flags |= PG_F_ERROR;
		if (bpf_probe_read_user(ev->data + (len & (PG_TEXT_MAX - 1)), el, (void *)err) == 0)
			ev->err_len = el;
	}
	ecap_output(ctx, ev, __builtin_offsetof(struct pg_event, data) + (len & (PG_TEXT_MAX - 1)) +
				     (ev->err_len & (PG_ERR_MAX - 1)));
	tgid = ev->hdr.pid;
	bpf_map_update_elem(&pg_backends, &tgid, &one, BPF_ANY);
}

SEC("uprobe/pgstat_report_activity")
int BPF_UPROBE(uprobe_report_activity, int state, const char *cmd_str)
{
	__u32 tgid = pg_tgid();
	struct pg_state st = {};

	if (state != PG_STATE_RUNNING || !cmd_str) {
		bpf_map_delete_elem(&pg_state, &tgid);
		return 0;
	}
	if (ecap_filtered())
		return 0;
	st.start_ns = bpf_ktime_get_ns();
	st.text = (__u64)cmd_str;
	bpf_map_update_elem(&pg_state, &tgid, &st, BPF_ANY);
	return 0;
}

SEC("uprobe/pg_parse_query")
int BPF_UPROBE(uprobe_parse_query)
{
	__u32 tgid = pg_tgid();
	struct pg_state *st = bpf_map_lookup_elem(&pg_state, &tgid);

	if (!st)
		return 0;
	st->parsed = 1;
	return 0;
}

SEC("uprobe/PortalRun")
int BPF_UPROBE(uprobe_portal_run, void *portal, long count, bool top_level)
{
	__u32 tgid = pg_tgid();
	struct pg_state *st = bpf_map_lookup_elem(&pg_state, &tgid);
	__u64 name = 0;

	if (!st)
		return 0;
	if (!top_level) {
		if (st->depth)
			st->depth++;
		return 0;
	}
	st->depth = 1;
	st->flags |= PG_F_EXECUTED;
	st->phase = st->parsed ? PG_PHASE_QUERY : PG_PHASE_EXECUTE;
	/* PortalData: const char *name; const char *prepStmtName; ... */
	bpf_probe_read_user(&name, sizeof(name), portal + 8);
	st->stmt_name = name;
	return 0;
}

SEC("uretprobe/PortalRun")
int BPF_URETPROBE(uretprobe_portal_run)
{
	__u32 tgid = pg_tgid();
	struct pg_state *st = bpf_map_lookup_elem(&pg_state, &tgid);

	if (!st || !st->depth)
		return 0;
	if (--st->depth)
		return 0;
	pg_send(ctx, st, 0, 0);
	/* Keep the text: a Query may hold more statements. */
	st->start_ns = bpf_ktime_get_ns();
	return 0;
}

/* PG_TITLE_MAX bytes of the process title are searched for the activity. */
#define PG_TITLE_MAX 256

/*
 * pg_failed_phase tells the message a statement failed in before it ran:
 * the process title ends with " PARSE" or " BIND" in a Parse or Bind.
 */
static __always_inline __u32 pg_failed_phase(struct pg_state *st)
{
	__u32 phase = st->parsed ? PG_PHASE_QUERY : PG_PHASE_NONE;
#ifndef ECAP_NONCORE
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	char *title = ecap_scratch(&pg_title);
	__u64 start = BPF_CORE_READ(task, mm, arg_start);
	long n;
	__u32 i;

	if (!title || !start)
		return phase;
	n = bpf_probe_read_user_str(title, PG_TITLE_MAX, (void *)start);
	if (n < 7)
		return phase;
	i = (__u32)(n - 7) & (PG_TITLE_MAX - 1); /* " PARSE" before the NUL */
	if (i + 6 < PG_TITLE_MAX && title[i] == ' ' && title[i + 1] == 'P' && title[i + 2] == 'A' &&
	    title[i + 3] == 'R' && title[i + 4] == 'S' && title[i + 5] == 'E')
		return PG_PHASE_PARSE;
	i = (__u32)(n - 6) & (PG_TITLE_MAX - 1); /* " BIND" */
	if (i + 5 < PG_TITLE_MAX && title[i] == ' ' && title[i + 1] == 'B' && title[i + 2] == 'I' &&
	    title[i + 3] == 'N' && title[i + 4] == 'D')
		return PG_PHASE_BIND;
#endif
	return phase;
}

SEC("uprobe/pq_endmessage")
int BPF_UPROBE(uprobe_pq_endmessage, void *buf)
{
	__u32 tgid = pg_tgid();
	struct pg_state *st = bpf_map_lookup_elem(&pg_state, &tgid);
	struct pg_stringinfo si = {};

	if (!st)
		return 0;
	if (bpf_probe_read_user(&si, sizeof(si), buf))
		return 0;
	if (si.cursor == 'Z') { /* ReadyForQuery: the cycle is over */
		bpf_map_delete_elem(&pg_state, &tgid);
		return 0;
	}
	if (si.cursor != 'E' || si.len < 0)
		return 0;
	if (!(st->flags & PG_F_EXECUTED))
		st->phase = pg_failed_phase(st);
	pg_send(ctx, st, si.data, (__u32)si.len);
	bpf_map_delete_elem(&pg_state, &tgid);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_process_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ecap_hdr *h;

	if ((__u32)pid_tgid != tgid || !bpf_map_lookup_elem(&pg_backends, &tgid))
		return 0;
	bpf_map_delete_elem(&pg_backends, &tgid);
	bpf_map_delete_elem(&pg_state, &tgid);
	h = ecap_scratch(&pg_scratch);
	if (!h)
		return 0;
	ecap_fill_hdr(h, PG_BACKEND_EXIT);
	ecap_output(ctx, h, sizeof(*h));
	return 0;
}
