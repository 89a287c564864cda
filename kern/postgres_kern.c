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
 * Structures read: StringInfoData (data, len, cursor: unchanged since 8.x)
 * and PortalData.prepStmtName (second field since 8.x).
 *
 * A backend that sent a record is remembered in pg_backends; its exit (the
 * sched_process_exit tracepoint) sends a PG_BACKEND_EXIT record, so user
 * space forgets what it cached about the pid.
 */
#include "ecap.h"

char LICENSE[] SEC("license") = "GPL";

/* Both powers of two: lengths are bounded with & (MAX - 1). */
#define PG_TEXT_MAX 16384
#define PG_ERR_MAX 512

#define PG_STATE_RUNNING 2 /* BackendState (utils/backend_status.h) */

enum pg_kind {
	PG_STATEMENT = 1,
	PG_BACKEND_EXIT = 2,
};

enum pg_phase {
	PG_PHASE_NONE = 0,
	PG_PHASE_PARSE = 1,   /* a Parse message */
	PG_PHASE_BIND = 2,    /* a Bind message */
	PG_PHASE_QUERY = 3,   /* a Query message (parsed by pg_parse_query) */
	PG_PHASE_EXECUTE = 4, /* an Execute message */
};

enum pg_flags {
	PG_F_TRUNCATED = 1 << 0, /* text longer than PG_TEXT_MAX - 1 */
	PG_F_ERROR = 1 << 1,     /* ended by an ErrorResponse: err_len bytes of it follow the text */
	PG_F_EXECUTED = 1 << 2,  /* reached a top-level PortalRun */
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
	__u32 phase;
	__u32 err_len;
	char stmt_name[64]; /* NUL-terminated, "" when unnamed */
	char data[PG_TEXT_MAX + PG_ERR_MAX];
};

ECAP_SCRATCH(pg_scratch, struct pg_event);

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
	ev->hdr.flags = st->flags & PG_F_EXECUTED;
	ev->stmt_name[0] = 0;
	if (st->stmt_name)
		bpf_probe_read_user_str(ev->stmt_name, sizeof(ev->stmt_name), (void *)st->stmt_name);
	n = bpf_probe_read_user_str(ev->data, PG_TEXT_MAX, (void *)st->text);
	if (n > 0) {
		len = (__u32)(n - 1) & (PG_TEXT_MAX - 1);
		if (n == PG_TEXT_MAX) {
			char next = 0;

			if (bpf_probe_read_user(&next, 1, (void *)(st->text + PG_TEXT_MAX - 1)) == 0 && next)
				ev->hdr.flags |= PG_F_TRUNCATED;
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
