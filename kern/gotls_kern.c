// SPDX-License-Identifier: GPL-2.0
/*
 * gotls_kern.c - Go's crypto/tls: the plaintext of TLS connections of Go
 * programs (text mode) and the secrets of their sessions (keylog mode).
 * User space: plugins/gotls/gotlsmod, which finds the functions below in
 * the executable's .gopclntab (stripped executables keep it) and attaches
 * every probe at a file offset. The mechanics of the records (sessions,
 * connection from the socket, chunked output) are those of
 * kern/include/tls.h.
 *
 * Go 1.17+ on x86-64 (register ABI, ABIInternal): a function's arguments
 * arrive in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11, its results leave
 * in RAX, RBX, RCX..., and R14 always holds the running goroutine (g).
 *
 * Probes (uprobes only: a uretprobe replaces the return address on the
 * goroutine's stack, which the Go runtime moves and walks, and crashes
 * the program):
 *
 *   uprobe (*Conn).Write at entry     egress: b[:len(b)], all of which
 *                                     Write sends or fails on
 *   uprobe (*Conn).Read at entry      remember (c, b) for the goroutine
 *   uprobe at each RET of (*Conn).Read   ingress: b[:n], n = RAX > 0
 *   uprobe (*Conn).Close              forget the session
 *   uprobe (*Config).writeKeyLog      (keylog mode) label, client random
 *                                     and secret of one key log line
 *
 * A goroutine moves between threads while it waits in Read, so the
 * pending reads are keyed by (tgid, g), not by thread; the RET probes pop
 * the goroutine's innermost read (TLS inside TLS nests two).
 *
 * Connection: the tls.Conn's net.Conn is followed to its socket's
 * descriptor, c.conn (interface: type word, data word) -> *net.TCPConn
 * -> conn.fd *netFD -> pfd.Sysfd, with netFD.family and .sotype checked
 * (AF_INET, AF_INET6 or AF_UNIX, SOCK_STREAM) so that another net.Conn
 * implementation is not misread: its records carry no addresses. The
 * offsets come from user space, per Go release (gotlsmod/layout.go).
 * tls.h resolves the descriptor to addresses once per session. A new
 * descriptor behind a known tls.Conn address (a Conn collected without
 * Close, its memory reused) starts a new session.
 */
/* Room for 1 MiB bursts: 64 records of 16 KiB; buffer_kib overrides it. */
#define ECAP_RINGBUF_SIZE (16 * 1024 * 1024)
#include "ecap.h"
#include "tls.h"

char LICENSE[] SEC("license") = "GPL";

/* tls_data_event.fn */
enum gotls_fn {
	GOTLS_FN_WRITE = 1,
	GOTLS_FN_READ = 2,
};

/* What to capture, set by user space: text mode data, keylog mode keys. */
const volatile __u32 gotls_capture_data = 1;
const volatile __u32 gotls_capture_keys = 0;

/* Offsets from the tls.Conn to the socket (gotlsmod/layout.go). */
const volatile __u32 gotls_conn_data = 8;  /* tls.Conn: data word of the net.Conn interface conn */
const volatile __u32 gotls_tcpconn_fd = 0; /* net.TCPConn: conn.fd, the *netFD */
const volatile __u32 gotls_sysfd = 16;     /* netFD: pfd.Sysfd (int) */
const volatile __u32 gotls_family = 56;    /* netFD: family (int), sotype (int) after it */

#define GOTLS_SOCK_STREAM 1
#ifndef AF_UNIX
#define AF_UNIX 1
#endif

/* The goroutine: R14 in ABIInternal code. */
#define GO_G(ctx) ((ctx)->r14)

/* ------------------------------------------------------------ plaintext */

/* How many tls.Conn.Read calls one goroutine can be inside (TLS in TLS: 2). */
#define GOTLS_DEPTH 2

/* Indexes of gotls_stats, after tls.h's counters in their own map. */
enum gotls_stat {
	GOTLS_STAT_UNTRACKED = 0, /* reads not captured: gotls_reads full */
	GOTLS_STAT_KEYS_LOST = 1, /* key log lines not captured: label or secret too long */
	GOTLS_STAT_MAX = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GOTLS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gotls_stats SEC(".maps");

static __always_inline void gotls_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&gotls_stats, &stat);

	if (n)
		__sync_fetch_and_add(n, 1);
}

struct gotls_goroutine {
	__u32 tgid;
	__u32 reserved;
	__u64 g;
};

struct gotls_read {
	__u64 conn; /* *tls.Conn */
	__u64 buf;  /* b's data */
};

/* The reads a goroutine is inside, innermost last. */
struct gotls_reads {
	struct gotls_read f[GOTLS_DEPTH];
	__u32 depth;
	__u32 skipped; /* reads entered beyond GOTLS_DEPTH, not captured */
};

/*
 * Pending reads by goroutine; an entry lives while its goroutine is inside
 * Read (an idle keep-alive connection's goroutine waits there).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct gotls_goroutine);
	__type(value, struct gotls_reads);
} gotls_reads SEC(".maps");

/*
 * gotls_fd returns the descriptor of the socket under the tls.Conn at
 * conn, -1 when it is not a stream socket of a net.Conn this layout
 * describes. known is the session's descriptor: when the tls.Conn still
 * leads to it, its family and type were checked already.
 */
static __always_inline int gotls_fd(__u64 conn, int known)
{
	__u64 data = 0, nfd = 0;
	__s64 sysfd = -1, kind[2] = {};

	if (bpf_probe_read_user(&data, sizeof(data), (void *)(conn + gotls_conn_data)) || !data)
		return -1;
	if (bpf_probe_read_user(&nfd, sizeof(nfd), (void *)(data + gotls_tcpconn_fd)) || !nfd)
		return -1;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(nfd + gotls_sysfd)) || sysfd < 0 || sysfd > 0x7fffffff)
		return -1;
	if (known >= 0 && sysfd == known)
		return known;
	if (bpf_probe_read_user(kind, sizeof(kind), (void *)(nfd + gotls_family)))
		return -1;
	if ((kind[0] != AF_INET && kind[0] != AF_INET6 && kind[0] != AF_UNIX) || kind[1] != GOTLS_SOCK_STREAM)
		return -1;
	return (int)sysfd;
}

/*
 * gotls_session returns the state of the session of the tls.Conn at conn,
 * its descriptor up to date: a descriptor other than the one known is a
 * new connection at a reused address, and a new session.
 */
static __always_inline struct tls_session *gotls_session(__u64 conn)
{
	struct tls_session *s = tls_session_get(conn);
	int fd;

	if (!s)
		return NULL;
	fd = gotls_fd(conn, s->fd);
	if (fd < 0 || s->fd == fd)
		return s;
	if (s->fd >= 0) {
		tls_session_free(conn);
		s = tls_session_get(conn);
		if (!s)
			return NULL;
	}
	s->fd = fd;
	s->conn_sk = 0;
	return s;
}

/* func (c *Conn) Write(b []byte) (int, error): c in RAX, b in RBX, RCX, RDI */
SEC("uprobe/go_tls_write")
int uprobe_go_tls_write(struct pt_regs *ctx)
{
	struct tls_frame f = {.fn = GOTLS_FN_WRITE, .dir = TLS_DIR_EGRESS};
	struct tls_session *s;
	__u64 len = ctx->cx;

	if (!gotls_capture_data || ecap_filtered())
		return 0;
	f.session = ctx->ax;
	f.buf = ctx->bx;
	if (!f.session || !f.buf || !len)
		return 0;
	s = gotls_session(f.session);
	tls_data_of(ctx, &f, len, s);
	return 0;
}

/* func (c *Conn) Read(b []byte) (int, error): c in RAX, b in RBX, RCX, RDI */
SEC("uprobe/go_tls_read")
int uprobe_go_tls_read(struct pt_regs *ctx)
{
	struct gotls_goroutine key = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = GO_G(ctx)};
	struct gotls_reads init = {}, *r;
	__u64 conn = ctx->ax, buf = ctx->bx;
	__u32 d;

	if (!gotls_capture_data || !conn || !buf || ecap_filtered())
		return 0;
	r = bpf_map_lookup_elem(&gotls_reads, &key);
	if (!r) {
		bpf_map_update_elem(&gotls_reads, &key, &init, BPF_NOEXIST);
		r = bpf_map_lookup_elem(&gotls_reads, &key);
		if (!r) {
			gotls_count(GOTLS_STAT_UNTRACKED);
			return 0;
		}
	}
	d = r->depth;
	if (d >= GOTLS_DEPTH) {
		r->skipped++;
		tls_count(TLS_STAT_DEPTH);
		return 0;
	}
	r->f[d & (GOTLS_DEPTH - 1)].conn = conn;
	r->f[d & (GOTLS_DEPTH - 1)].buf = buf;
	r->depth = d + 1;
	return 0;
}

/* At each RET of (*Conn).Read: n in RAX, the error in RBX, RCX. */
SEC("uprobe/go_tls_read_ret")
int uprobe_go_tls_read_ret(struct pt_regs *ctx)
{
	struct gotls_goroutine key = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = GO_G(ctx)};
	struct tls_frame f = {.fn = GOTLS_FN_READ, .dir = TLS_DIR_INGRESS};
	struct gotls_reads *r = bpf_map_lookup_elem(&gotls_reads, &key);
	__s64 n = (__s64)ctx->ax;
	__u32 d;

	if (!r)
		return 0; /* entered before the probes were attached, or not tracked */
	if (r->skipped) {
		r->skipped--;
		return 0;
	}
	d = r->depth;
	if (d == 0 || d > GOTLS_DEPTH) {
		bpf_map_delete_elem(&gotls_reads, &key);
		return 0;
	}
	d--;
	f.session = r->f[d & (GOTLS_DEPTH - 1)].conn;
	f.buf = r->f[d & (GOTLS_DEPTH - 1)].buf;
	r->depth = d;
	if (d == 0)
		bpf_map_delete_elem(&gotls_reads, &key);
	if (n <= 0)
		return 0;
	tls_data_of(ctx, &f, (__u64)n, gotls_session(f.session));
	return 0;
}

/* func (c *Conn) Close() error: c in RAX */
SEC("uprobe/go_tls_close")
int uprobe_go_tls_close(struct pt_regs *ctx)
{
	if (ctx->ax)
		tls_session_free(ctx->ax);
	return 0;
}

/* ----------------------------------------------------------------- keys */

/* ecap_hdr.kind of struct gotls_key_event (tls_data_event is TLS_KIND_DATA). */
#define GOTLS_KIND_KEY 2
#define GOTLS_LABEL_MAX 32
#define GOTLS_RANDOM_LEN 32
#define GOTLS_SECRET_MAX 64

/*
 * struct gotls_key_event: the arguments of one writeKeyLog call, which
 * crypto/tls makes for every secret whether or not a KeyLogWriter is set.
 * No implicit padding; Go twin gotlsmod.keyRecord, checked through the
 * object's BTF.
 */
struct gotls_key_event {
	struct ecap_hdr hdr; /* kind GOTLS_KIND_KEY, len 0 */
	__u64 config;        /* *tls.Config */
	__u32 label_len;
	__u32 random_len;
	__u32 secret_len;
	__u32 reserved;
	__u8 label[GOTLS_LABEL_MAX];
	__u8 random[GOTLS_RANDOM_LEN];
	__u8 secret[GOTLS_SECRET_MAX];
};

/* Keeps struct gotls_key_event in the object's BTF, for the Go side's layout test. */
struct gotls_key_event *gotls_key_event_btf __attribute__((unused));

/*
 * func (c *Config) writeKeyLog(label string, clientRandom, secret []byte) error:
 * c in RAX, label in RBX, RCX; clientRandom in RDI, RSI, R8; secret in R9, R10, R11.
 */
SEC("uprobe/go_tls_write_key_log")
int uprobe_go_tls_write_key_log(struct pt_regs *ctx)
{
	__u64 label = ctx->bx, label_len = ctx->cx, random = ctx->di, random_len = ctx->si;
	__u64 secret = ctx->r9, secret_len = ctx->r10;
	struct gotls_key_event *e;

	if (!gotls_capture_keys || ecap_filtered())
		return 0;
	if (label_len == 0 || label_len > GOTLS_LABEL_MAX || random_len != GOTLS_RANDOM_LEN || secret_len == 0 ||
	    secret_len > GOTLS_SECRET_MAX) {
		gotls_count(GOTLS_STAT_KEYS_LOST);
		return 0;
	}
	e = ecap_reserve(sizeof(*e));
	if (!e)
		return 0;
	ecap_fill_hdr(&e->hdr, GOTLS_KIND_KEY);
	e->config = ctx->ax;
	e->label_len = label_len;
	e->random_len = random_len;
	e->secret_len = secret_len;
	e->reserved = 0;
	__builtin_memset(e->label, 0, sizeof(e->label));
	__builtin_memset(e->secret, 0, sizeof(e->secret));
	if (bpf_probe_read_user(e->label, label_len & (GOTLS_LABEL_MAX - 1) ? label_len & (GOTLS_LABEL_MAX - 1) : GOTLS_LABEL_MAX,
				(void *)label) ||
	    bpf_probe_read_user(e->random, GOTLS_RANDOM_LEN, (void *)random) ||
	    bpf_probe_read_user(e->secret, secret_len & (GOTLS_SECRET_MAX - 1) ? secret_len & (GOTLS_SECRET_MAX - 1) : GOTLS_SECRET_MAX,
				(void *)secret)) {
		bpf_ringbuf_discard(e, 0);
		gotls_count(GOTLS_STAT_KEYS_LOST);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}
