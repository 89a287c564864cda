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
 * status of the command whose line was read last: the exit record of the
 * pending line (kern/include/shellrec.h). A multi-line command's exit
 * record carries its last line.
 *
 * The filters (target_pid, target_uid, target_comm) are checked when a line
 * is read; a process that does not pass them never gets a pending entry,
 * so parse_command costs other bash processes (scripts) one hash lookup.
 */
/* SHELL_LINE_MAX is a power of two: len & (SHELL_LINE_MAX - 1) bounds len. */
#define SHELL_LINE_MAX 1024
#include "shellrec.h"

char LICENSE[] SEC("license") = "GPL";

/* Link-time addresses (ELF st_value), set by user space before load. */
const volatile __u64 sym_rl_newline = 0;           /* readline binary */
const volatile __u64 sym_rl_line_buffer = 0;       /* readline binary: char * */
const volatile __u64 sym_parse_command = 0;        /* bash binary */
const volatile __u64 sym_last_command_exit_value = 0; /* bash binary: int */

SEC("uprobe/rl_newline")
int BPF_UPROBE(uprobe_rl_newline)
{
	__u64 bias = PT_REGS_IP(ctx) - sym_rl_newline;
	const char *line = NULL;
	struct shell_event *ev;
	long n;

	if (ecap_filtered())
		return 0;
	if (bpf_probe_read_user(&line, sizeof(line), (void *)(bias + sym_rl_line_buffer)) || !line)
		return 0;
	ev = shell_begin();
	if (!ev)
		return 0;

	n = bpf_probe_read_user_str(ev->line, sizeof(ev->line), line);
	if (n <= 1) /* empty line, or unreadable */
		return 0;
	if (n == SHELL_LINE_MAX) {
		char next = 0;

		if (bpf_probe_read_user(&next, 1, line + SHELL_LINE_MAX - 1) == 0 && next)
			ev->hdr.flags |= SHELL_F_TRUNCATED;
	}
	shell_command(ctx, ev, (__u32)(n - 1));
	return 0;
}

SEC("uprobe/parse_command")
int BPF_UPROBE(uprobe_parse_command)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 bias = PT_REGS_IP(ctx) - sym_parse_command;
	struct shell_event *p;
	int status = 0;
	long err;

	p = shell_pending_line(tgid);
	if (!p)
		return 0;
	err = bpf_probe_read_user(&status, sizeof(status), (void *)(bias + sym_last_command_exit_value));
	shell_exit(ctx, tgid, p, err, status);
	return 0;
}
