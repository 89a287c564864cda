// Package opensslmod is the openssl capture module: for TLS connections
// made through OpenSSL 1.1.1 and 3.x (libssl.so, or a program linking
// OpenSSL statically), in mode "text" the plaintext processes write and
// read, with the TCP connection it travels on; in mode "keylog" every
// session's secrets, in the NSS key log format Wireshark reads; in mode
// "pcap" an interface's packets in a pcapng file that carries those
// secrets, so that Wireshark opens it decrypted with nothing else.
//
// # Probes
//
// kern/openssl_kern.c with kern/include/tls.h, which explains the
// mechanics. Entry uprobes on SSL_read and SSL_read_ex save the session
// (SSL *), the buffer and, for SSL_read_ex, the size_t out-parameter on a
// per-thread stack; their uretprobes take the length the call reports
// (ret > 0, or *readbytes when SSL_read_ex returns 1) and send the bytes as
// records of at most 16 KiB. In text mode on a kernel with the sock
// tracepoints (Linux 6.3+), SSL_write and SSL_write_ex are captured by
// their entry uprobe alone, num bytes of buf, which spares a return
// probe's trap on every write (about 6% of a busy server's throughput); a
// send that fails on the session's socket inside the write (EAGAIN: the
// call returns WANT_WRITE) marks the write, and its next call for the same
// bytes is not captured again. A write that fails for good is still shown.
// Elsewhere (the key modes, older kernels) writes are captured at return
// like reads, with the length they report. A call
// of up to 16 MiB arrives whole, as consecutive records; beyond that it is
// cut, its last event carries truncated=true and the counter
// tls_calls_truncated counts it. Records the ring buffer cannot take are
// counted in ringbuf_reserve_failed. The ring buffer is 16 MiB unless
// buffer_kib says otherwise.
//
// Bytes not copied. A call's bytes are cut to its snap length: max_data
// when set, and 4096 while the module's ring buffer is over half full (so
// that an overloaded host still sees every request and response, bodies
// cut, rather than losing whole records; full copies resume as the ring
// drains). The last event of a cut call has truncated=true and
// payload_bytes, the call's length from that event's offset; the host's
// HTTP decoding skips the missing bytes and marks the message truncated
// with its real length. Counters: truncated_records, truncated_bytes,
// truncated_overload_records (shown apart from losses).
//
// The connection is found without kprobes: SSL_set_fd, SSL_set_rfd and
// SSL_set_wfd tie a session to an fd, and so does socket I/O by a thread
// inside an SSL call that has a return probe (SSL_read*, SSL_do_handshake,
// and SSL_write* where writes are captured at return), seen by the sock
// tracepoints sock_send_length and sock_recv_length (Linux 6.3+) or else
// by the syscall tracepoints (read, readv, recvfrom, recvmsg, write,
// writev, sendto, sendmsg on a socket); this covers programs giving
// OpenSSL their own BIO. The fd is resolved in the calling task (files,
// fdtable, the socket's struct sock) to the family, addresses and ports,
// once per session. A session given no fd whose writes come before any
// read or handshake call has no addresses until then. SSL_free forgets the
// session. The common pid, uid and comm filters are applied in the kernel.
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
//	           (cut to max_data, to 4096 while the ring buffer is over
//	           half full, or at 16 MiB; or a chunk the kernel could not
//	           read from the process: counter tls_chunks_unreadable)
//	payload_bytes  with truncated, when the call was cut: the length
//	           this event's payload had
//	gap        "true": records of this connection and direction were
//	           lost just before this one: its payload does not follow on
//	           from the previous one's
//
// # Key modes: keylog and pcap
//
// In both, the secrets cost once per session, not per call: the
// SSL_read/SSL_write probes of text mode are not attached. Entry and
// return uprobes on SSL_do_handshake (which SSL_connect and SSL_accept
// tail-call) read, when it returns 1, the session's secrets out of
// OpenSSL's structures. OpenSSL runs the handshake a client leaves to its
// first SSL_write/SSL_read (Python's ssl with do_handshake_on_connect=False
// calls SSL_new, SSL_set_fd, SSL_write_ex, SSL_read_ex and SSL_free, never
// SSL_do_handshake, SSL_connect or SSL_accept: counted with bpftrace) by
// calling its state machine directly, which no exported symbol marks.
// Such sessions, and those older than the module, are keyed by:
//
//   - SSL_free's entry, which reads a session never keyed before
//     forgetting it (counter info_tls_keys_at_free);
//   - the fallback probes, entry uprobes on SSL_write, SSL_read and their
//     _ex forms that read the secrets of a session not keyed yet (counter
//     info_tls_keys_fallback). The module attaches them for the window
//     after start (sessions older than it), and whenever a session SSL_new
//     made (uretprobe) entered no SSL_do_handshake within 200 ms, or was
//     not keyed 2 s after it last entered it; it detaches them once they
//     found no session to key for 500 ms and no such session is left (one
//     keeping them 10 s without being keyed is given up: SSL_free still
//     keys it). info_tls_keys_fallback_attached and info_tls_keys_fallback_ms
//     count how often and how long. They go on every binary probed: the
//     config's or the one found, and each copy node-wide discovery
//     probes (a container's own libssl: ebpfbase.Object.FoundFiles),
//     those found while they are attached included; each file's are
//     uprobe_multi links, attached and detached in milliseconds (as
//     perf-event uprobes, detaching took about 70 ms a probe, serially).
//
// Why attached and detached rather than always there and exiting early
// for a session already keyed: a uprobe costs its trap on every call
// whatever its program does. bpftrace merely counting SSL_write entries
// and SSL_read returns held nginx (1 worker, TLS 1.3, wrk -t1 -c16, 1 KiB)
// to 0.33 of its rate, and keylog mode with probes on every call to 0.31
// (issue 17, 2026-12-04). With no probe on those calls, keylog mode costs
// its handshake probes, once per connection: docs/performance.md has the
// latest figures.
//
// A session is read only once its handshake is complete (TLS 1.3: the
// exporter secret, which OpenSSL derives with the application secrets, is
// set; older versions: the session has its master key). The kernel sends
// one record per handshake (the client_random it sent is remembered per
// SSL *; SSL_free forgets it): TLS version, client_random, cipher, for TLS
// <= 1.2 the session's master key, for TLS 1.3 handshake_secret,
// handshake_traffic_hash, the client finished key, server_finished_hash,
// the application traffic secrets and the exporter master secret, with
// the process and the connection. No plaintext is captured in these modes.
//
// User space checks every TLS 1.3 session before writing a byte: the
// handshake traffic secrets it derives (HKDF-Expand-Label over
// handshake_secret and handshake_traffic_hash) must give the client
// finished key OpenSSL stored, and the application secrets it derives
// from the master secret (itself derived from handshake_secret) and
// server_finished_hash must give OpenSSL's client application secret or
// exporter secret. The lines written are CLIENT_HANDSHAKE_TRAFFIC_SECRET,
// SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0,
// SERVER_TRAFFIC_SECRET_0 and EXPORTER_SECRET (the derived generation 0
// secrets, right even after a KeyUpdate), or CLIENT_RANDOM for TLS 1.2
// and older; each session once, however many probed processes took part
// (deduplicated by client_random). A session failing the check is not
// written and is counted in tls_keys_unverified: a wrong layout gives no
// keys, never wrong keys.
//
// Where the secrets are depends on the OpenSSL release. Init reads the
// version of each probed binary: OPENSSL_VERSION_TEXT ("OpenSSL 3.0.19
// 27 Jan 2026") in the binary's .rodata (libssl 1.1 and static builds
// hold it) or in the libcrypto it links (libssl 3 does not: the one the
// pid filter's process maps, the one beside it, the one its DT_NEEDED
// resolves to), else the value OpenSSL_version_num returns, read from its
// code. The layout table (offsets.go) covers 1.1.1 to 1.1.1w and 3.0 to
// 3.5; each row says how its offsets were obtained. Where SSL_get_session
// and SSL_version are a single load (up to 3.1 on x86-64), their code
// must read the table's offsets, which catches vendor builds whose layout
// differs. An unknown version, a fork (a suffix after the number, such as
// quictls' "+quic") or contradicting code is refused by Init with a
// diagnostic naming the version found and the file it was read from; a
// libssl the module found by itself (not set in libssl or binary) is left
// out with a warning when another one is usable. The attributes
// openssl_version (use that release's row) and offsets (override single
// offsets, or give them all) are the way out. Up to 4 binaries (4
// layouts) are probed at once in these modes.
//
// Events: one "tls_keys" event (sdk.RouteOutput) per record, with the
// process, the connection when the kernel found it, and the fields lib,
// version ("TLS 1.3"), client_random (hex), cipher ("0x1302"), layout,
// logged ("true" when this record's lines were written, "false" for a
// session already written or not checked) and problem (why not). They
// never carry a secret: outputs are logs kept with less care than the
// key file.
//
// keylog mode writes the lines to keylog_file, created 0600 and appended
// to (through sdk/safefile: a symbolic link, a FIFO or a file another user
// owns or can write is refused), each session's lines in one write as soon as its record is read
// (so a reader tailing the file decrypts it at once).
//
// pcap mode attaches TC programs to ifname (classifier/egress and
// classifier/ingress; egress only on a loopback interface, where every
// packet crosses both): as tcx links where the kernel has them (Linux
// 6.6+; closing them removes these programs and nothing else), else as
// filters of a clsact qdisc through ebpfmanager. Each copies the packet,
// filtered in the kernel by port and host when set, once, straight from
// the skb into a record of the pcap_events ring buffer, in the smallest of
// a few size classes (256 B to 256 KiB) that holds it: a loopback GSO
// packet of 64 KiB is one record; packets beyond 256 KiB are cut
// (pcap_packets_truncated). One ring for every CPU keeps the packets in
// the order they were sent, and the reader is woken once a batch is
// waiting (ecap_wakeup_bytes), not for every packet. The pcapng file
// (sdk/pcapng) is created 0600 (sdk/safefile) with one interface
// (Ethernet link type for Ethernet and loopback interfaces, raw IP for
// tun-like ones). An existing pcapng file is appended to: a restarted
// plugin writes a new section after the whole blocks of the earlier one (a
// block cut by a kill is removed first), so tshark reads and decrypts
// both. A packet of a connection whose session keys are written goes to
// the file at once; the others (a handshake's first packets) wait, one
// second at most, until their keys come, so that a session's Decryption
// Secrets Block is written before the packets it decrypts; a
// connection's packets keep their order. A packet's comment names the
// process that sent it, "pid=N comm=C" and its container
// ("container_id=... pod_uid=...", or "cgroup=PATH"), learnt from the key
// records' connections; when only the receiving end is known (the sender
// is remote, or not probed), "sender unknown; receiver pid=N comm=C ...".
// On loopback, where both ends are local, a packet waits for its sender's
// record (read by another goroutine than the packets) up to a second after
// the receiver's. keylog_file may be set too. The packet capture ignores the
// pid, uid and comm filters: a packet has no process in the kernel; they
// apply to the key probes.
//
// Losses, reported like text mode's: ringbuf_reserve_failed (key records
// the ring buffer could not take: retried at the session's next call),
// tls_keys_unreadable, tls_keys_unsupported (QUIC objects, 3.2+),
// tls_keys_unverified, tls_keys_unwritten; in pcap mode pcap_packets_lost
// (not queued: the ring buffer was full), pcap_packets_truncated,
// pcap_packets_early (written before their keys: 32 MiB were waiting) and
// pcap_packets_unwritten. Without buffer_kib, keylog mode uses a 1 MiB
// ring buffer, pcap mode 16 MiB for the packets (and as much for the
// key records).
//
// # Config attributes
//
//	mode    "text" (the default), "keylog" or "pcap"
//	libssl  the libssl.so to probe. Empty: with the pid filter, every
//	        libssl the process maps (its executable if it maps none but
//	        defines SSL_write; paths through /proc/PID/root for a process in
//	        another mount namespace); without, every libssl.so.3 and
//	        libssl.so.1.1 in the loader cache (ldconfig -p) or the usual
//	        library directories, each file once
//	binary  a program carrying its own OpenSSL (e.g. node): probed instead
//	        of the libssl found, or besides the libssl set
//	max_data  text mode: the most bytes of a call copied (0, the
//	        default: all, up to 16 MiB); 1 to 16777216, else a diagnostic
//	keylog_file      the key log (required in keylog mode, optional in pcap)
//	pcap_file        the pcapng file (pcap mode, required; a restart
//	                 appends a section, never truncates)
//	ifname           the interface to capture (pcap mode, required)
//	port             pcap mode: only TCP/UDP packets from or to this port
//	host             pcap mode: only packets from or to this IP address
//	openssl_version  key modes: read with this release's layout ("3.0.0")
//	offsets          key modes: ["handshake_secret=0x584", ...]
//
// Attributes of another mode than the one set are refused, as are a
// missing file's directory, an unknown interface, a port beyond 65535 and
// a host that is not an IP address.
//
// Init checks each path (exists, regular, ELF, defines SSL_write and
// SSL_read) and reports a diagnostic naming the attribute. Start mounts
// tracefs at /sys/kernel/tracing when it is not mounted: the syscall
// tracepoints need it.
//
// # Limits
//
// Key modes: TLS 1.3 early data secrets (CLIENT_EARLY_TRAFFIC_SECRET) are
// not logged; QUIC objects of OpenSSL 3.2+ are counted, not read; layouts
// are those of x86-64 builds with OpenSSL's default options (no-psk and
// the like move fields); BoringSSL, LibreSSL and quictls are not OpenSSL.
// A session whose handshake was not seen is logged at its first
// SSL_read/SSL_write while the fallback probes are attached, else when it
// is freed: after its packets, for pcap mode's Decryption Secrets Blocks
// (tshark -2 reads them). pcap mode: on a kernel without tcx,
// ebpfmanager removes the clsact qdisc of ifname when it stops, taking
// other TC filters on it along; packets of another network namespace's interfaces are not seen; a packet
// whose keys come more than a second after it (a slow handshake) is
// written before them, and Wireshark needs a second pass (tshark -2) for
// it.
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
