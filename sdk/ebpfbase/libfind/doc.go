// Package libfind finds the shared libraries a capture module attaches
// uprobes to, the way the loader would give them to programs: in the
// mappings of a running process (/proc/PID/maps, seen through the
// process's root when it lives in another mount namespace), or in the
// loader's cache (ldconfig -p) and the usual library directories.
//
// Modules call it from Init when the user named no library, then check
// each file found (elfsym) and report what they could not use. It only
// reads files and runs ldconfig: it loads nothing into the kernel.
package libfind
