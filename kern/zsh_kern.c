// SPDX-License-Identifier: GPL-2.0
// ecap:noncore (reads no kernel struct: also built for kernels without BTF)
/*
 * zsh_kern.c - the command lines typed into interactive zsh, and their exit
 * status. User space: plugins/zsh/zshmod.
 *
 * Probes (entry uprobes only, both in the zsh binary):
 *
 *   uprobe hend       the line has been read and parsed
 *   uprobe preprompt  the next prompt is about to be printed
 *
 * zsh's main loop (init.c loop()) reads one event per iteration: hbegin,
 * then preprompt (interactive top level only), then parse_event reading
 * the line (through zle when it is on, possibly over several prompts for a
 * multi-line construct), then hend, then execode runs it. The history
 * module keeps what was read in the globals chline (start) and hptr (end):
 * at hend's entry chline..hptr is the whole command line as zsh read it,
 * history expansion done, newlines of a multi-line command included.
 * hbegin sets chline to NULL where history is off (scripts, sourced files,
 * eval and other strings parsed while a command runs), so a non-NULL
 * chline at hend means a line read from an interactive shell's input.
 *
 * Exit status: preprompt runs before the next prompt, after the previous
 * command finished, when the global lastval holds its status ($?). The
 * line is kept per process in zsh_pending from hend until then and sent
 * again as an exit record. The command that ends the shell (exit, exec, a
 * fatal signal) has no exit record; a line zsh could not parse has its
 * command record, and an exit record with the status zsh set for the
 * parse error.
 *
 * Entry probes catch shells already waiting at their prompt when capture
 * starts. Globals of the binary are read through their link-time address:
 * at an entry uprobe, ip - <function's st_value> is the load bias (see
 * bash_kern.c); user space sets the st_values as constants before load.
 *
 * The filters (target_pid, target_uid, target_comm) are checked at hend; a
 * process that does not pass them never gets a pending entry.
 */
#include "ecap.h"

char LICENSE[] SEC("license") = "GPL";

/* ZSH_LINE_MAX is a power of two: len & (ZSH_LINE_MAX - 1) bounds len. */
#define ZSH_LINE_MAX 4096

enum zsh_kind {
	ZSH_COMMAND = 1,
	ZSH_COMMAND_EXIT = 2,
};

enum zsh_flags {
	ZSH_F_TRUNCATED = 1 << 0,    /* the line was longer than ZSH_LINE_MAX - 1 */
	ZSH_F_STATUS_KNOWN = 1 << 1, /* status is set (ZSH_COMMAND_EXIT) */
};

/* Link-time addresses (ELF st_value) in the zsh binary, set before load. */
const volatile __u64 sym_hend = 0;      /* function */
const volatile __u64 sym_preprompt = 0; /* function */
const volatile __u64 sym_chline = 0;    /* char *: start of the line */
const volatile __u64 sym_hptr = 0;      /* char *: end of the line */
const volatile __u64 sym_lastval = 0;   /* zlong (int in older releases) */
const volatile __u32 lastval_size = 8;  /* its ELF st_size: 4 or 8 */

/*
 * struct zsh_event is the record sent to user space: hdr.len bytes of line
 * follow the fixed fields, without a terminating NUL. Go twin:
 * zshmod.record.
 */
struct zsh_event {
	struct ecap_hdr hdr;
	__s32 status;   /* exit status, ZSH_COMMAND_EXIT only */
	__u32 reserved; /* explicit: the size stays a multiple of 8 */
	char line[ZSH_LINE_MAX];
};

/* Scratch space for one record: too large for the BPF stack. */
ECAP_SCRATCH(zsh_scratch, struct zsh_event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct zsh_event);
} zsh_pending SEC(".maps");

static __always_inline __u64 zsh_record_size(__u32 len)
{
	return __builtin_offsetof(struct zsh_event, line) + (len & (ZSH_LINE_MAX - 1));
}

SEC("uprobe/hend")
int BPF_UPROBE(uprobe_hend)
{
	__u64 bias = PT_REGS_IP(ctx) - sym_hend;
	const char *start = NULL, *end = NULL;
	struct zsh_event *ev;
	__u64 n;
	__u32 tgid, len;

	if (ecap_filtered())
		return 0;
	if (bpf_probe_read_user(&start, sizeof(start), (void *)(bias + sym_chline)) || !start)
		return 0;
	if (bpf_probe_read_user(&end, sizeof(end), (void *)(bias + sym_hptr)) || end <= start)
		return 0;
	n = end - start;
	ev = ecap_scratch(&zsh_scratch);
	if (!ev)
		return 0;

	ecap_fill_hdr(&ev->hdr, ZSH_COMMAND);
	if (n > ZSH_LINE_MAX - 1) {
		n = ZSH_LINE_MAX - 1;
		ev->hdr.flags |= ZSH_F_TRUNCATED;
	}
	len = (__u32)n & (ZSH_LINE_MAX - 1);
	if (bpf_probe_read_user(ev->line, len, start))
		return 0;
	/* The newline that ended the line is not part of it. */
	if (len > 0 && ev->line[(len - 1) & (ZSH_LINE_MAX - 1)] == '\n')
		len--;
	if (len == 0) /* an empty line runs nothing */
		return 0;
	ev->hdr.len = len;
	ev->status = 0;
	ev->reserved = 0;
	ecap_output(ctx, ev, zsh_record_size(len));

	/* Keep the line for its exit record. */
	tgid = ev->hdr.pid;
	ev->hdr.kind = ZSH_COMMAND_EXIT;
	bpf_map_update_elem(&zsh_pending, &tgid, ev, BPF_ANY);
	return 0;
}

SEC("uprobe/preprompt")
int BPF_UPROBE(uprobe_preprompt)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 bias = PT_REGS_IP(ctx) - sym_preprompt;
	struct zsh_event *p;
	__s64 status = 0;
	long err;

	p = bpf_map_lookup_elem(&zsh_pending, &tgid);
	if (!p)
		return 0;
	if (lastval_size == 8) {
		err = bpf_probe_read_user(&status, 8, (void *)(bias + sym_lastval));
	} else {
		__s32 v = 0;

		err = bpf_probe_read_user(&v, 4, (void *)(bias + sym_lastval));
		status = v;
	}
	if (err == 0) {
		p->status = (__s32)status;
		p->hdr.flags |= ZSH_F_STATUS_KNOWN;
		p->hdr.timestamp_ns = bpf_ktime_get_ns();
		ecap_output(ctx, p, zsh_record_size(p->hdr.len));
	}
	bpf_map_delete_elem(&zsh_pending, &tgid);
	return 0;
}
