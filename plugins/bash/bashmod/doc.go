// Package bashmod is the bash capture module: every line typed into an
// interactive bash, and the exit status of the command it ran.
//
// Probes (kern/bash_kern.c), both entry uprobes: readline's rl_newline
// (Enter pressed) reads the line from readline's rl_line_buffer and sends a
// "command" event at once; bash's parse_command, called before reading the
// next command, reads last_command_exit_value and sends a "command_exit"
// event carrying the line again with the field "status". Entry probes
// catch shells that were already waiting at their prompt when capture
// started or restarted, which a uretprobe on readline would miss.
//
// The kernel comment explains the limits: a multi-line command's exit
// event carries its last line; the command that ends the shell (exit,
// exec) has none; a line that runs nothing (a comment) reports the status
// bash still holds. Input read by `read -e` goes through readline too and
// shows as a command. Every event is RouteOutput.
//
// Config attributes:
//
//	bash_binary      the bash that defines parse_command (default /bin/bash)
//	readline_binary  the binary that defines readline; "" finds it: bash
//	                 itself, or the libreadline.so bash links (DT_NEEDED)
//
// Both are checked by Init, which reports a diagnostic naming the
// attribute when a file is missing, is not ELF or lacks a symbol.
package bashmod
