// Package gnutlsmod is the gnutls capture module: the plaintext that
// processes send and receive through GnuTLS 3.x (libgnutls.so.30), with
// the TCP connection it travels on. It is an example of a module built
// outside ecaphost's workspace (see docs/writing-a-module.md): its own Go
// module, its own eBPF C, the SDK's harness for its tests.
//
// # Probes
//
// kern/gnutls_kern.c with ecaphost's kern/include/tls.h, which explains
// the mechanics. Entry uprobes on gnutls_record_send(session, data, size)
// and gnutls_record_recv(session, data, size) save the session (the
// gnutls_session_t pointer) and the buffer on a per-thread stack; their
// uretprobes take the ssize_t the call returned and, when it is > 0, send
// that many bytes as records of at most 16 KiB. A call arrives whole up
// to its snap length (max_data, 4096 while the ring buffer is over half
// full, 16 MiB at most); beyond it the call is cut, its last event
// carrying truncated=true and payload_bytes (the length it had), counted
// in truncated_records and truncated_bytes.
//
// The connection is found without kprobes: gnutls_transport_set_int2 (and
// the gnutls_transport_set_int macro) ties a session to an fd, and the
// sock_send_length / sock_recv_length tracepoints (the syscall tracepoints
// on kernels older than 6.3) tie it to the socket a thread inside a GnuTLS
// call uses. gnutls_deinit forgets the session. The common pid, uid and
// comm filters are applied in the kernel.
//
// # Events
//
// Every record becomes one event of Kind "tls_data", Route
// sdk.RouteStream, decoded by sdk/tlsrecord: the host joins the events per
// connection and direction and decodes HTTP/1.x and HTTP/2. Conn.Direction
// is egress for gnutls_record_send, ingress for gnutls_record_recv;
// Conn.Local and Conn.Remote are the socket's addresses; Conn.ID tells
// sessions apart (tlsrecord.ConnID). Fields:
//
//	lib        "gnutls"
//	fn         gnutls_record_send or gnutls_record_recv
//	truncated  "true": bytes of this call after this event are missing
//	payload_bytes  with truncated, when the call was cut: the length
//	           this event's payload had
//	gap        "true": records of this connection and direction were
//	           lost just before this one
//
// # Config attributes
//
//	libgnutls  the libgnutls.so to probe. Empty: with the pid filter,
//	           every libgnutls the process maps (through /proc/PID/root for
//	           a process in another mount namespace); without, every
//	           libgnutls.so.30 in the loader cache (ldconfig -p) or the
//	           usual library directories, each file once
//	record_file  optional: every raw record, after its length (4 bytes,
//	           little-endian), appended for decoder tests and fuzz corpora
//	max_data   the most bytes of a call copied (0, the default: all, up to
//	           16 MiB), sdk/tlsrecord's MaxDataAttribute
//
// Init checks the path (exists, regular, ELF, defines gnutls_record_send
// and gnutls_record_recv) and reports a diagnostic naming the attribute.
// record_file holds plaintext, so it is opened as every file ecaphost
// writes, through sdk/safefile: created 0600, appended to, a symbolic
// link or a file of another user refused (checked in Init too).
//
// # Limits
//
// gnutls_record_send2, gnutls_record_send_range, gnutls_record_recv_seq
// and gnutls_record_recv_packet (DTLS, zero-copy) are not probed, nor a
// program carrying GnuTLS statically. A call in progress when the probes
// are attached is missed. Only the CO-RE object exists: a kernel without
// BTF needs the btf_file setting.
package gnutlsmod
