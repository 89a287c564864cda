/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * shellrec.h - the record of a command line typed into an interactive
 * shell and of its exit status, shared by the shell modules (bash_kern.c,
 * zsh_kern.c). Go side: sdk/shellrec, which decodes it.
 *
 * A shell's program finds the line at a probe of its own and copies it
 * into the record shell_begin() returns, then calls shell_command(): the
 * line goes out as a SHELL_COMMAND record and stays, per process, in
 * shell_pending. At the probe where the shell knows the status of the
 * command it ran (its next prompt), the program calls shell_exit() with
 * what it read: the pending line goes out again as a SHELL_COMMAND_EXIT
 * record carrying that status. The command that ends the shell (exit,
 * exec, a fatal signal) has no exit record.
 *
 * Define SHELL_LINE_MAX, a power of two, before including this file: a
 * line of more than SHELL_LINE_MAX - 1 bytes is cut there and flagged
 * SHELL_F_TRUNCATED.
 */
#ifndef ECAP_SHELLREC_H
#define ECAP_SHELLREC_H

#include "ecap.h"

#ifndef SHELL_LINE_MAX
#error "define SHELL_LINE_MAX (a power of two) before including shellrec.h"
#endif

enum shell_kind {
	SHELL_COMMAND = 1,
	SHELL_COMMAND_EXIT = 2,
};

enum shell_flags {
	SHELL_F_TRUNCATED = 1 << 0,    /* the line was longer than SHELL_LINE_MAX - 1 */
	SHELL_F_STATUS_KNOWN = 1 << 1, /* status is set (SHELL_COMMAND_EXIT) */
};

/*
 * struct shell_event is the record sent to user space: hdr.len bytes of
 * line follow the fixed fields, without a terminating NUL or the newline
 * that ended the line. Go twin: shellrec.Record.
 */
struct shell_event {
	struct ecap_hdr hdr;
	__s32 status;   /* exit status, SHELL_COMMAND_EXIT only */
	__u32 reserved; /* explicit: the size stays a multiple of 8, no tail padding */
	char line[SHELL_LINE_MAX];
};

/* Scratch space for one record: too large for the BPF stack. */
ECAP_SCRATCH(shell_scratch, struct shell_event);

/* The line of each process's last command, until its exit record. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct shell_event);
} shell_pending SEC(".maps");

static __always_inline __u64 shell_record_size(__u32 len)
{
	return __builtin_offsetof(struct shell_event, line) + (len & (SHELL_LINE_MAX - 1));
}

/*
 * shell_begin returns the scratch record with its header filled for the
 * current task (kind SHELL_COMMAND, no flags), for the caller to copy the
 * line into; NULL if there is none.
 */
static __always_inline struct shell_event *shell_begin(void)
{
	struct shell_event *ev = ecap_scratch(&shell_scratch);

	if (!ev)
		return NULL;
	ecap_fill_hdr(&ev->hdr, SHELL_COMMAND);
	ev->status = 0;
	ev->reserved = 0;
	return ev;
}

/*
 * shell_command sends ev, whose line holds len bytes, as a command record
 * and keeps it as the process's pending exit record. The newline that
 * ended the line is not part of it; an empty line runs nothing and sends
 * nothing.
 */
static __always_inline void shell_command(void *ctx, struct shell_event *ev, __u32 len)
{
	__u32 tgid;

	len &= SHELL_LINE_MAX - 1;
	if (len > 0 && ev->line[(len - 1) & (SHELL_LINE_MAX - 1)] == '\n')
		len--;
	if (len == 0)
		return;
	ev->hdr.len = len;
	ecap_output(ctx, ev, shell_record_size(len));

	tgid = ev->hdr.pid;
	ev->hdr.kind = SHELL_COMMAND_EXIT;
	bpf_map_update_elem(&shell_pending, &tgid, ev, BPF_ANY);
}

/*
 * shell_pending_line returns the current process's pending record, NULL
 * when it has none (a process that never passed the filters, a script):
 * look it up before reading the status, so that other processes cost one
 * hash lookup.
 */
static __always_inline struct shell_event *shell_pending_line(__u32 tgid)
{
	return bpf_map_lookup_elem(&shell_pending, &tgid);
}

/*
 * shell_exit sends p, the pending record of process tgid, as the exit
 * record of its command with status, unless reading the status failed
 * (err != 0), and forgets it.
 */
static __always_inline void shell_exit(void *ctx, __u32 tgid, struct shell_event *p, long err, __s32 status)
{
	if (err == 0) {
		p->status = status;
		p->hdr.flags |= SHELL_F_STATUS_KNOWN;
		p->hdr.timestamp_ns = bpf_ktime_get_ns();
		ecap_output(ctx, p, shell_record_size(p->hdr.len));
	}
	bpf_map_delete_elem(&shell_pending, &tgid);
}

#endif /* ECAP_SHELLREC_H */
