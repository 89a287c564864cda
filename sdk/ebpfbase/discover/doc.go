// Package discover finds, on the whole node, the files a capture module
// probes, and keeps finding them while it runs: the libraries every
// process maps (in every mount namespace, through /proc/PID/root), the
// executables processes run, and those of every process started later.
//
// A Watcher scans every process once when it starts. Then a tracepoint on
// sched_process_exec (kern/sdk/execwatch.c, loaded by the Watcher) tells
// it of every exec; it reads the new process's mappings at a few instants
// over the next half second (the dynamic loader maps the libraries just
// after the exec) and offers each file it has not seen, by device and
// inode, to Config.Probe. A file probed once needs nothing more: every
// later process mapping it runs the probed code. Every GCInterval, a file
// that no live process can reach any more (its container is gone) is
// released; the number of probed files is capped (Config.MaxFiles).
//
// The Watcher knows nothing of symbols or programs: Probe decides whether
// a file is one to probe and attaches. ebpfbase uses it to give every
// module with uprobes node-wide reach; a module with its own notion of a
// target (Go executables) can use it directly.
package discover
