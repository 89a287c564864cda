// Package safefile creates and opens the files an ecaphost component
// writes — event outputs, key logs, pcapng captures, rotated files, the
// lock file — so that no other local user can redirect or read them.
//
// ecaphost and its plugins run as root and write TLS plaintext and session
// secrets, often into a directory such as /tmp where other users can create
// names. Append and Replace therefore:
//
//   - never follow a symbolic link at the file's own name (O_NOFOLLOW), and
//     never open anything but a regular file (a FIFO, device or directory is
//     refused without blocking);
//   - create a new file exclusively (O_EXCL) with mode 0600;
//   - accept an existing file only when it is owned by root or by the user
//     running the program, is not writable by group or others, and has a
//     single name (a hard link could be another user's way to a file); one
//     that group or others can read is narrowed to 0600 on the descriptor;
//   - refuse a directory that others can write to, unless it is sticky and
//     owned by root (/tmp), where only a file's owner can replace it;
//   - append, never truncate: what an earlier run wrote stays.
//
// Every refusal wraps ErrUnsafe and names the path and the reason. Check
// gives the same verdict without creating or changing anything, for a
// "validate" command to report before a capture starts.
//
// Symbolic links in the directories above the file are followed; the
// kernel's fs.protected_symlinks (on by default) keeps root from following
// another user's link in a sticky world-writable directory.
package safefile
