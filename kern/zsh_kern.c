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
 * command finished, when the global lastval holds its status ($?): the
 * exit record of the pending line (kern/include/shellrec.h). A line zsh
 * could not parse has its command record, and an exit record with the
 * status zsh set for the parse error.
 *
 * Entry probes catch shells already waiting at their prompt when capture
 * starts. Globals of the binary are read through their link-time address:
 * at an entry uprobe, ip - <function's st_value> is the load bias (see
 * bash_kern.c); user space sets the st_values as constants before load.
 *
 * The filters (target_pid, target_uid, target_comm) are checked at hend; a
 * process that does not pass them never gets a pending entry.
 */
/* SHELL_LINE_MAX is a power of two: len & (SHELL_LINE_MAX - 1) bounds len. */
#define SHELL_LINE_MAX 4096
#include "shellrec.h"

char LICENSE[] SEC("license") = "GPL";

/* Link-time addresses (ELF st_value) in the zsh binary, set before load. */
const volatile __u64 sym_hend = 0;      /* function */
const volatile __u64 sym_preprompt = 0; /* function */
const volatile __u64 sym_chline = 0;    /* char *: start of the line */
const volatile __u64 sym_hptr = 0;      /* char *: end of the line */
const volatile __u64 sym_lastval = 0;   /* zlong (int in older releases) */
const volatile __u32 lastval_size = 8;  /* its ELF st_size: 4 or 8 */

SEC("uprobe/hend")
int BPF_UPROBE(uprobe_hend)
{
	__u64 bias = PT_REGS_IP(ctx) - sym_hend;
	const char *start = NULL, *end = NULL;
	struct shell_event *ev;
	__u32 len;
	__u64 n;

	if (ecap_filtered())
		return 0;
	if (bpf_probe_read_user(&start, sizeof(start), (void *)(bias + sym_chline)) || !start)
		return 0;
	if (bpf_probe_read_user(&end, sizeof(end), (void *)(bias + sym_hptr)) || end <= start)
		return 0;
	n = end - start;
	ev = shell_begin();
	if (!ev)
		return 0;

	if (n > SHELL_LINE_MAX - 1) {
		n = SHELL_LINE_MAX - 1;
		ev->hdr.flags |= SHELL_F_TRUNCATED;
	}
	len = (__u32)n & (SHELL_LINE_MAX - 1);
	if (bpf_probe_read_user(ev->line, len, start))
		return 0;
	shell_command(ctx, ev, len);
	return 0;
}

SEC("uprobe/preprompt")
int BPF_UPROBE(uprobe_preprompt)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 bias = PT_REGS_IP(ctx) - sym_preprompt;
	struct shell_event *p;
	__s64 status = 0;
	long err;

	p = shell_pending_line(tgid);
	if (!p)
		return 0;
	if (lastval_size == 8) {
		err = bpf_probe_read_user(&status, 8, (void *)(bias + sym_lastval));
	} else {
		__s32 v = 0;

		err = bpf_probe_read_user(&v, 4, (void *)(bias + sym_lastval));
		status = v;
	}
	shell_exit(ctx, tgid, p, err, (__s32)status);
	return 0;
}
