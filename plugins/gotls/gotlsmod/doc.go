// Package gotlsmod is the gotls capture module: for TLS connections made
// by Go programs through the standard library's crypto/tls, in mode "text"
// the plaintext they write and read, with the TCP connection it travels
// on; in mode "keylog" every session's secrets, in the NSS key log format
// Wireshark reads. Go links no libssl, so the openssl module sees none of
// this traffic.
//
// # Finding the functions: .gopclntab, not the symbol table
//
// A Go executable built with -ldflags="-s -w" has no .symtab, but the
// runtime needs its function table (.gopclntab: names, entry and end
// addresses) for stack traces, so every Go executable keeps it (in
// .data.rel.ro.gopclntab in PIE builds of some releases). Init reads the Go version from
// the build information (debug/buildinfo), parses the table with the
// standard library's debug/gosym, and looks up crypto/tls.(*Conn).Write,
// (*Conn).Read, (*Conn).Close and (*Config).writeKeyLog. Their addresses
// are turned into file offsets through the executable PT_LOAD segment,
// and every probe is a uprobe at a file offset, so stripped, PIE and
// plain executables are probed alike.
//
// # No return probes: a uprobe on each RET of Read
//
// A uretprobe replaces the return address on the stack with a trampoline.
// Go moves goroutine stacks when they grow and walks them for the garbage
// collector and for tracebacks, and a foreign return address there makes
// the runtime crash ("unexpected return pc"). So the module never uses
// uretprobes on Go code. Write's plaintext is complete at entry (b, all of
// which Write sends or fails on), so Write has an entry probe only. Read's
// plaintext exists only when it returns: Init decodes the machine code of
// (*Conn).Read from its entry to its end (.gopclntab gives both) with
// golang.org/x/arch/x86/x86asm, the Go project's own x86 decoder, and
// attaches a plain uprobe at each RET instruction; Go emits no data among
// a function's instructions, so a linear sweep finds every one (7 in Read
// for Go 1.19 to 1.27). An entry probe records (c, b) for the goroutine;
// each RET probe takes n from RAX and sends b[:n]. A goroutine waiting in
// Read may resume on another thread, so pending reads are keyed by the
// goroutine (R14 holds g in Go's register ABI), not by thread.
//
// # Versions and offsets
//
// Go 1.17 introduced the register ABI on amd64 (arguments in RAX, RBX,
// RCX..., g in R14): executables built by an older Go are refused at
// validate with the version found, as are other architectures. The
// connection is found from the tls.Conn itself: c.conn (a net.Conn
// interface) -> *net.TCPConn -> *netFD -> pfd.Sysfd, with netFD's family
// and sotype checked (a net.Conn of another kind gives records without
// addresses rather than wrong ones); tls.h then resolves the descriptor
// to addresses once per session. The offsets come from a table per Go
// release (layout.go): one row covers 1.17 to 1.27, checked by a test
// against the DWARF of executables built by Go 1.19, this machine's Go
// and Go 1.27. An executable of a release the table lacks is refused at
// validate with the version found; go_version = "1.27" reads it with
// that release's offsets.
//
// # Events
//
// Text mode: every record becomes one event of Kind "tls_data", Route
// sdk.RouteStream (the host joins them per connection and direction and
// decodes HTTP/1.1 and HTTP/2 as for OpenSSL), Payload the chunk's
// plaintext in order, Conn the connection (ID from the process, the
// tls.Conn's address and a serial; the socket's addresses; direction
// egress for Write, ingress for Read). Fields: lib "go", fn "Write" or
// "Read", truncated and gap as in sdk/tlsrecord. (*Conn).Close forgets
// the session; a tls.Conn collected without Close whose address a new
// one takes is told apart by its descriptor.
//
// Keylog mode: crypto/tls calls (*Config).writeKeyLog(label,
// clientRandom, secret) for every secret of every handshake, whether or
// not the program set a KeyLogWriter (the nil check is inside). An entry
// probe sends its arguments; user space gathers a session's lines by
// client random and writes them to keylog_file (0600, appended) when the
// session is complete: CLIENT_RANDOM for TLS 1.2, the four traffic
// secrets of TLS 1.3 (CLIENT/SERVER_HANDSHAKE_TRAFFIC_SECRET,
// CLIENT/SERVER_TRAFFIC_SECRET_0), checked first (a 48-byte master
// secret; four TLS 1.3 secrets of one hash length, 32 or 48 bytes), each
// session once even when both ends are probed. Each written or refused
// session is a "tls_keys" event (sdk.RouteOutput) with lib, version,
// client_random, logged and problem; never a secret. Counters:
// tls_keys_unreadable, tls_keys_unverified, tls_keys_incomplete (a TLS
// 1.3 handshake that stopped half way, or more than 4096 sessions
// waiting), tls_keys_unwritten. No plaintext is captured in this mode.
//
// # Targets and config attributes
//
//	mode         "text" (default) or "keylog"
//	binary       the Go executable to probe
//	keylog_file  the key log of mode "keylog" (required there)
//	go_version   offsets of this release for an unknown one ("1.27")
//
// Without binary: with the pid filter, the process's executable; without
// it, every running process's executable that is a Go program linking
// crypto/tls (recognised from its build information and .gopclntab, not
// its name), each file once, leaving out this plugin and the ecaphost
// running it; and Go programs started later: the node-wide discovery of
// sdk/ebpfbase/discover (an exec tracepoint) offers each new executable
// file, which is inspected the same way and probed when its release has
// the loaded layout. Probes attach to the file, so every process running
// it is captured; the pid, uid and comm filters apply in the kernel.
// Without binary or pid, Init still wants one Go program with crypto/tls
// running (the probes are loaded from a first one). A Go executable the module cannot probe
// (too old, another architecture) found this way is logged and left out;
// a configured one is refused.
//
// # Limits
//
// x86-64 only. Reads in progress when the probes attach are not seen;
// 65536 goroutines can be inside Read at once (an idle keep-alive
// connection's goroutine waits there), beyond which reads are counted in
// gotls_reads_untracked. A Write that fails (the peer reset the
// connection) is still shown as written. TLS inside TLS nests up to two
// reads per goroutine. Programs built with -linkshared, with gccgo, or
// with crypto/tls replaced (BoringCrypto builds keep crypto/tls and are
// captured) are not covered. The ring buffer is 16 MiB unless buffer_kib
// says otherwise.
package gotlsmod
