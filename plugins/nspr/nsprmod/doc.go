// Package nsprmod is the nspr capture module: the plaintext that
// processes write and read through NSS, the TLS library of Firefox,
// Thunderbird and the NSS tools, caught where it passes through NSPR's I/O
// functions (libnspr4.so), with the TCP connection it travels on.
//
// # Probes
//
// kern/nspr_kern.c with kern/include/tls.h, which explains the mechanics.
// Entry uprobes on PR_Write, PR_Send, PR_Read, PR_Recv and PR_Writev save
// the descriptor (PRFileDesc *, the session), the buffer and the layer of
// the descriptor on a per-thread stack; their uretprobes take the count
// the call returns (> 0) and send the bytes as records of at most 16 KiB
// (PR_Writev: the first ret bytes of its iovecs, each iovec as a call of
// its own). A call arrives whole up to its snap length: max_data, 4096
// while the ring buffer is over half full, 16 MiB at most; beyond it the
// call is cut, its last event carrying truncated=true and payload_bytes
// (the length it had), counted in truncated_records and truncated_bytes
// (and truncated_overload_records, tls_calls_truncated). PR_Close forgets the descriptor. The connection is found without
// kprobes, as for the openssl module: the socket a thread sends or
// receives on while inside the call (raw tracepoints sock_send_length and
// sock_recv_length, or the syscall tracepoints on kernels before 6.3),
// resolved to family, addresses and ports. The common pid, uid and comm
// filters are applied in the kernel. The ring buffer is 16 MiB unless
// buffer_kib says otherwise.
//
// # Layers
//
// NSPR carries files, pipes and sockets alike; NSS's TLS is an I/O layer
// (identity from PR_GetUniqueIdentity("SSL"), file type PR_DESC_LAYERED)
// pushed on a TCP socket's descriptor. The entry probe reads the
// descriptor it is given (struct PRFileDesc of prio.h: methods, secret,
// lower, higher, dtor, identity) and methods->file_type, and walks lower
// through layered descriptors to the bottom one (8 layers at most). The
// record's layer is then:
//
//	ssl      the stack holds NSS's SSL layer: TLS plaintext
//	tcp, udp, file, pipe
//	         a plain descriptor of that type (a TCP socket under an SSL
//	         layer carries ciphertext)
//	layered  a stack of layers without NSS's SSL layer
//	unknown  the descriptor could not be read
//
// Which layer is NSS's: uprobes on PR_GetUniqueIdentity record, per
// process, the identity the call for "SSL" returned: exact for every
// process that initialises NSS's SSL after the module started. For a
// process that did so before (a browser already running), the identity
// is not known and a layered descriptor whose bottom is a TCP socket is
// taken for SSL: a stack of other layers over TCP (a SOCKS layer without
// TLS, say) is then reported as ssl too.
//
// With ssl_only (the default) the probes drop calls on any other layer at
// entry, in the kernel: only TLS plaintext is captured.
//
// # Events
//
// Every record becomes one event of Kind "tls_data", Route
// sdk.RouteStream (the host joins them per connection and direction and
// decodes HTTP), Payload the chunk's bytes, in order. Conn.Direction is
// egress for PR_Write, PR_Send and PR_Writev, ingress for PR_Read and
// PR_Recv; Conn.Local and Conn.Remote are the socket's addresses, unset
// when no socket was seen (files, pipes, or data NSS had buffered). Conn.ID
// is tlsrecord.ConnID(pid, PRFileDesc pointer, serial). Fields:
//
//	lib        "nspr"
//	fn         PR_Write, PR_Send, PR_Read, PR_Recv or PR_Writev
//	truncated  "true": bytes of this call after this event are missing
//	payload_bytes  with truncated, when the call was cut: the length
//	           this event's payload had
//	gap        "true": records of this connection and direction were lost
//	           just before this one
//	layer      ssl, tcp, udp, file, pipe, layered or unknown (see Layers)
//
// # Config attributes
//
//	nspr_lib  the libnspr4.so to probe (or a library NSPR is folded into,
//	          defining PR_Write: Mozilla's builds of Firefox fold it into
//	          their libnss3.so). Empty: with the pid filter, what the
//	          process maps defining PR_Write (libnspr4.so, or libnss3.so),
//	          else its executable; without, every libnspr4.so in the loader
//	          cache (ldconfig -p) or the usual library directories
//	ssl_only  true (default): only the SSL layer; false: every layer
//	max_data  the most bytes of a call copied (0, the default: all, up
//	          to 16 MiB); 1 to 16777216, else a diagnostic
//
// Init checks the path (exists, regular, ELF, defines PR_Write and
// PR_Read) and reports a diagnostic naming nspr_lib.
//
// # Limits
//
// Only calls entered after the probes attached are seen. NSS calls the
// layers below its own through their method tables, not through PR_Write
// and the like, so the ciphertext is not seen at all (and with ssl_only
// off, a program's own PR_Write on the TCP descriptor under an SSL layer
// shows as tcp). PR_SendTo, PR_RecvFrom, PR_TransmitFile and PR_Writev
// iovecs past the 16th are not captured. A process that forks without
// exec inherits NSS's identity but is a new process to the module: its
// layers are guessed as above. The session table holds 65536 descriptors
// (least recently used dropped).
package nsprmod
