// Package zshmod is the zsh capture module: every command line typed into
// an interactive zsh, and the exit status of what it ran.
//
// Probes (kern/zsh_kern.c), both entry uprobes on the zsh binary: hend,
// which zsh's main loop calls once a line has been read and parsed, reads
// the line from the history globals chline..hptr and sends a "command"
// event at once; preprompt, called before the next prompt, reads the
// global lastval ($?) and sends a "command_exit" event carrying the line
// again with the field "status". Both are exported by zsh for its loadable
// modules, so a stripped binary (Debian's) still has them in .dynsym.
//
// A multi-line command (a for loop typed over several prompts) is one
// event whose line holds the newlines. Lines that run nothing (empty) are
// not reported; the command that ends the shell (exit, exec) has no exit
// event; a line zsh cannot parse has a command event and an exit event
// with status 1. Scripts, sourced files and eval strings are not input
// typed into a shell and produce nothing. A line longer than 4095 bytes
// is cut there and marked truncated.
//
// Tested with Debian's zsh 5.9 (zle on a pseudo-terminal). Other builds
// are accepted when they define hend, preprompt, chline, hptr and lastval;
// Init names the missing one otherwise.
//
// Config attributes:
//
//	zsh_binary  the zsh to probe (default /bin/zsh)
package zshmod
