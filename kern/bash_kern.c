// SPDX-License-Identifier: GPL-2.0
// ecap:noncore (reads no kernel struct: also built for kernels without BTF)
/*
 * bash_kern.c - the commands typed into interactive bash, and their exit
 * status. User space: plugins/bash/bashmod.
 *
 * Probes (entry uprobes only):
 *
 *   uprobe rl_newline     (bash, or the libreadline.so it links)
 *   uprobe parse_command  (bash)
 *
 * Why not a uretprobe on readline, the usual way: a uretprobe only fires
 * for calls entered after it was attached, so every shell already waiting
 * at its prompt when capture starts (or restarts) would lose its next
 * line. rl_newline is readline's accept-line: it runs when Enter is
 * pressed, with the line still in the global rl_line_buffer. An entry
 * probe catches it in every shell, whenever it was attached.
 *
 * Globals of the traced binary are read through their link-time address:
 * at an entry uprobe the instruction pointer is the probed function's run
 * time address, so ip - <function's st_value> is the binary's load bias,
 * and bias + <variable's st_value> is where the variable lives. User space
 * reads the st_values from the ELF symbol tables and sets them as
 * constants before load; the function and the variable must come from the
 * same binary.
 *
 * Exit status: bash's reader_loop calls parse_command to read each
 * command (which calls readline) after executing the previous one, so at
 * parse_command's entry the global last_command_exit_value holds the
 * status of the command whose line was read last. The line is kept per
 * process in bash_pending until then and sent again as an exit record.
 * A multi-line command's exit record carries its last line; the command
 * that ends the shell (exit, exec, a fatal signal) has no exit record.
 *
 * The filters (target_pid, target_uid, target_comm) are checked when a line
 * is read; a process that does not pass them never gets a pending entry,
 * so parse_command costs other bash processes (scripts) one hash lookup.
 */
#include "ecap.h"

char LICENSE[] SEC("license") = "GPL";

/* BASH_LINE_MAX is a power of two: len & (BASH_LINE_MAX - 1) bounds len. */
#define BASH_LINE_MAX 1024

enum bash_kind {
	BASH_COMMAND = 1,
	BASH_COMMAND_EXIT = 2,
};

enum bash_flags {
	BASH_F_TRUNCATED = 1 << 0,    /* the line was longer than BASH_LINE_MAX - 1 */
	BASH_F_STATUS_KNOWN = 1 << 1, /* status is set (BASH_COMMAND_EXIT) */
};

/* Link-time addresses (ELF st_value), set by user space before load. */
const volatile __u64 sym_rl_newline = 0;           /* readline binary */
const volatile __u64 sym_rl_line_buffer = 0;       /* readline binary: char * */
const volatile __u64 sym_parse_command = 0;        /* bash binary */
const volatile __u64 sym_last_command_exit_value = 0; /* bash binary: int */

/*
 * struct bash_event is the record sent to user space: hdr.len bytes of
 * line follow the fixed fields, without the terminating NUL. Go twin:
 * bashmod.record.
 */
struct bash_event {
	struct ecap_hdr hdr;
	__s32 status;   /* exit status, BASH_COMMAND_EXIT only */
	__u32 reserved; /* explicit: the size stays a multiple of 8, no tail padding */
	char line[BASH_LINE_MAX];
};

/* Scratch space for one record: too large for the BPF stack. */
ECAP_SCRATCH(bash_scratch, struct bash_event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct bash_event);
} bash_pending SEC(".maps");

static __always_inline __u64 bash_record_size(__u32 len)
{
	return __builtin_offsetof(struct bash_event, line) + (len & (BASH_LINE_MAX - 1));
}

SEC("uprobe/rl_newline")
int BPF_UPROBE(uprobe_rl_newline)
{
	__u64 bias = PT_REGS_IP(ctx) - sym_rl_newline;
	const char *line = NULL;
	struct bash_event *ev;
	__u32 tgid, len;
	long n;

	if (ecap_filtered())
		return 0;
	if (bpf_probe_read_user(&line, sizeof(line), (void *)(bias + sym_rl_line_buffer)) || !line)
		return 0;
	ev = ecap_scratch(&bash_scratch);
	if (!ev)
		return 0;

	n = bpf_probe_read_user_str(ev->line, sizeof(ev->line), line);
	if (n <= 1) /* empty line, or unreadable */
		return 0;
	len = (__u32)(n - 1) & (BASH_LINE_MAX - 1);

	ecap_fill_hdr(&ev->hdr, BASH_COMMAND);
	ev->hdr.len = len;
	ev->status = 0;
	ev->reserved = 0;
	if (n == BASH_LINE_MAX) {
		char next = 0;

		if (bpf_probe_read_user(&next, 1, line + BASH_LINE_MAX - 1) == 0 && next)
			ev->hdr.flags |= BASH_F_TRUNCATED;
	}
	ecap_output(ctx, ev, bash_record_size(len));

	/* Keep the line for its exit record. */
	tgid = ev->hdr.pid;
	ev->hdr.kind = BASH_COMMAND_EXIT;
	bpf_map_update_elem(&bash_pending, &tgid, ev, BPF_ANY);
	return 0;
}

SEC("uprobe/parse_command")
int BPF_UPROBE(uprobe_parse_command)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 bias = PT_REGS_IP(ctx) - sym_parse_command;
	struct bash_event *p;
	int status = 0;

	p = bpf_map_lookup_elem(&bash_pending, &tgid);
	if (!p)
		return 0;
	if (bpf_probe_read_user(&status, sizeof(status), (void *)(bias + sym_last_command_exit_value)) == 0) {
		p->status = status;
		p->hdr.flags |= BASH_F_STATUS_KNOWN;
		p->hdr.timestamp_ns = bpf_ktime_get_ns();
		ecap_output(ctx, p, bash_record_size(p->hdr.len));
	}
	bpf_map_delete_elem(&bash_pending, &tgid);
	return 0;
}
