// Package opensslmod is the openssl capture module: the plaintext that
// processes write and read through OpenSSL 1.1.1 and 3.x (libssl.so, or a
// program linking OpenSSL statically), with the TCP connection it travels
// on.
//
// # Probes
//
// kern/openssl_kern.c with kern/include/tls.h, which explains the
// mechanics. Entry uprobes on SSL_write, SSL_read, SSL_write_ex and
// SSL_read_ex save the session (SSL *), the buffer and, for the _ex forms,
// the size_t out-parameter on a per-thread stack; their uretprobes take the
// length the call reports (ret > 0, or *written / *readbytes when the _ex
// form returns 1) and send the bytes as records of at most 16 KiB. A call
// of up to 16 MiB arrives whole, as consecutive records; beyond that it is
// cut, its last event carries truncated=true and the counter
// tls_calls_truncated counts it. Records the ring buffer cannot take are
// counted in ringbuf_reserve_failed. The ring buffer is 16 MiB unless
// buffer_kib says otherwise.
//
// The connection is found without kprobes: SSL_set_fd, SSL_set_rfd and
// SSL_set_wfd tie a session to an fd, and so do the syscall tracepoints
// (read, readv, recvfrom, recvmsg, write, writev, sendto, sendmsg on a
// socket) entered by a thread inside an SSL call, which covers programs
// giving OpenSSL their own BIO (curl). At each call the fd is resolved in
// the calling task (files, fdtable, the socket's struct sock) to the
// family, addresses and ports. SSL_free forgets the session. The common
// pid, uid and comm filters are applied in the kernel.
//
// # Events
//
// Every record becomes one event of Kind "tls_data", Route
// sdk.RouteStream (the host joins them per connection and direction and
// decodes HTTP), Payload the chunk's plaintext, in order. Conn.Direction is
// egress for SSL_write*, ingress for SSL_read*; Conn.Local and Conn.Remote
// are the socket's addresses (IPv4-mapped IPv6 addresses unmapped), unset
// when the session's fd is unknown or not an IP socket. Conn.ID is
// ConnID(pid, SSL pointer, serial): the serial is the kernel time the
// session was first seen, and SSL_free forgets it, so a session allocated
// later at the same address gets another ID. Fields:
//
//	lib        "openssl"
//	fn         SSL_write, SSL_read, SSL_write_ex or SSL_read_ex
//	truncated  "true": bytes of this call after this event are missing
//	           (call longer than 16 MiB, or a chunk the kernel could not
//	           read from the process: counter tls_chunks_unreadable)
//	gap        "true": records of this connection and direction were
//	           lost just before this one: its payload does not follow on
//	           from the previous one's
//
// # Config attributes
//
//	mode    "text" (the default and, for now, the only mode)
//	libssl  the libssl.so to probe. Empty: with the pid filter, every
//	        libssl the process maps (its executable if it maps none but
//	        defines SSL_write; paths through /proc/PID/root for a process in
//	        another mount namespace); without, every libssl.so.3 and
//	        libssl.so.1.1 in the loader cache (ldconfig -p) or the usual
//	        library directories, each file once
//	binary  a program carrying its own OpenSSL (e.g. node): probed instead
//	        of the libssl found, or besides the libssl set
//
// Init checks each path (exists, regular, ELF, defines SSL_write and
// SSL_read) and reports a diagnostic naming the attribute. Start mounts
// tracefs at /sys/kernel/tracing when it is not mounted: the syscall
// tracepoints need it.
//
// # Limits
//
// Only the exported SSL_read/SSL_write forms are probed: a program doing
// its TLS I/O through a BIO_f_ssl BIO (BIO_read/BIO_gets on it, e.g.
// `openssl s_server -WWW`) reaches OpenSSL's internal ssl_read_internal /
// ssl_write_internal, which libssl does not export, and is not captured.
// A uretprobe only fires for calls entered after it was attached: a call
// in progress at start is missed. The syscall tracepoints run on every
// read/write-like syscall of the machine: a hash lookup each, nothing more
// outside SSL calls. Data that OpenSSL reads or writes
// without a syscall during the SSL call (a memory BIO, data already
// buffered before the session was first seen) leaves the connection
// unknown until the session does I/O on a socket or SSL_set_fd is seen; a
// session doing its I/O on a non-socket fd has its fd only from
// SSL_set_fd. The session table holds 65536 sessions (least recently used
// dropped: a dropped session gets a new ID). Only the CO-RE object exists:
// a kernel without BTF needs the btf_file setting. SSL_peek is not
// captured: its bytes come again from SSL_read.
package opensslmod
