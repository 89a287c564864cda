// SPDX-License-Identifier: GPL-2.0
/*
 * nspr_kern.c - the plaintext of NSS TLS connections, as it passes through
 * NSPR's I/O layer (libnspr4.so: Firefox, Thunderbird, NSS tools...). User
 * space: plugins/nspr/nsprmod. The mechanics (per-thread call stack,
 * connection without kprobes, chunked records) are in kern/include/tls.h;
 * the session is the PRFileDesc pointer the application holds.
 *
 * Probes, on libnspr4.so (or a library NSPR is folded into):
 *
 *   uprobe+uretprobe PR_Write, PR_Send     egress: ret > 0 bytes of buf
 *   uprobe+uretprobe PR_Read, PR_Recv      ingress: ret > 0 bytes of buf
 *   uprobe+uretprobe PR_Writev             egress: the first ret bytes of
 *                                          the iovecs, one call each
 *   uprobe PR_Close                        forget the session
 *   uprobe+uretprobe PR_GetUniqueIdentity  learn the identity NSS's SSL
 *                                          layer gets in each process
 *   tracepoints sock_send_length/sock_recv_length (or the syscall ones,
 *   tls.h)                                 session -> socket
 *
 * Layers. NSPR carries files, pipes and sockets alike, and NSS's TLS is an
 * I/O layer pushed on top of a TCP socket's descriptor (SSL_ImportFD). At
 * entry the probe reads the descriptor the call is given (struct
 * PRFileDesc of prio.h: methods, secret, lower, higher, dtor, identity)
 * and its methods->file_type (PRDescType), walking `lower` through
 * layered descriptors (PR_DESC_LAYERED) down to the bottom one, at most
 * NSPR_MAX_LAYERS deep. The record's layer (tls_data_event.info):
 *
 *   NSPR_LAYER_FILE, _TCP, _UDP, _PIPE   a plain descriptor of that type
 *   NSPR_LAYER_SSL                       a layered descriptor whose stack
 *                                        holds NSS's SSL layer: the bytes
 *                                        are TLS plaintext
 *   NSPR_LAYER_LAYERED                   another layered descriptor
 *   NSPR_LAYER_UNKNOWN                   unreadable, or a type NSPR lacks
 *
 * NSS's SSL layer is the one whose identity NSS got from
 * PR_GetUniqueIdentity("SSL"): the probes on that function record it per
 * process. A process that registered it before the probes were attached
 * (a browser already running) has no known identity; for it a layered
 * descriptor whose bottom is a TCP socket is taken for SSL.
 *
 * With nspr_ssl_only (the default) calls on any other layer are dropped at
 * entry: nothing of them is recorded. The ciphertext NSS writes to the TCP
 * socket below its layer goes through the socket's methods directly, not
 * through PR_Write/PR_Send, and would be reported as layer TCP anyway.
 */
/* Room for 1 MiB bursts: 64 records of 16 KiB; buffer_kib overrides it. */
#define ECAP_RINGBUF_SIZE (16 * 1024 * 1024)
#include "ecap.h"
#include "tls.h"

char LICENSE[] SEC("license") = "GPL";

/* tls_data_event.fn */
enum nspr_fn {
	NSPR_FN_PR_WRITE = 1,
	NSPR_FN_PR_SEND = 2,
	NSPR_FN_PR_READ = 3,
	NSPR_FN_PR_RECV = 4,
	NSPR_FN_PR_WRITEV = 5,
};

/* tls_data_event.info: the descriptor's layer. 1..5 are PRDescType. */
enum nspr_layer {
	NSPR_LAYER_UNKNOWN = 0,
	NSPR_LAYER_FILE = 1,    /* PR_DESC_FILE */
	NSPR_LAYER_TCP = 2,     /* PR_DESC_SOCKET_TCP */
	NSPR_LAYER_UDP = 3,     /* PR_DESC_SOCKET_UDP */
	NSPR_LAYER_LAYERED = 4, /* PR_DESC_LAYERED, without NSS's SSL layer */
	NSPR_LAYER_PIPE = 5,    /* PR_DESC_PIPE */
	NSPR_LAYER_SSL = 6,     /* a stack holding NSS's SSL layer */
};

#define PR_DESC_FILE 1
#define PR_DESC_SOCKET_TCP 2
#define PR_DESC_PIPE 5
#define PR_DESC_LAYERED 4

/* How many layers the walk down a descriptor stack reads at most. */
#define NSPR_MAX_LAYERS 8
/* PR_MAX_IOVECTOR_SIZE: PR_Writev takes at most 16 iovecs. */
#define NSPR_MAX_IOV 16

/* Keep only NSPR_LAYER_SSL calls; set by user space (setting ssl_only). */
const volatile __u32 nspr_ssl_only = 1;

/* The start of struct PRFileDesc (prio.h), for LP64 targets. */
struct nspr_fd {
	__u64 methods; /* const PRIOMethods *: its first member is PRDescType file_type */
	__u64 secret;
	__u64 lower;
	__u64 higher;
	__u64 dtor;
	__s32 identity; /* PRDescIdentity */
	__u32 pad;
};

/* struct PRIOVec (prio.h): char *iov_base; int iov_len; */
struct nspr_iovec {
	__u64 base;
	__s32 len;
	__u32 pad;
};

/* tgid -> the identity PR_GetUniqueIdentity("SSL") returned in it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} nspr_ssl_ids SEC(".maps");

/* tid -> 1 while it is inside PR_GetUniqueIdentity("SSL"). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} nspr_ident_calls SEC(".maps");

/* nspr_layer tells what the descriptor fd is (enum nspr_layer). */
static __always_inline __u32 nspr_layer(__u64 fd)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__s32 *ssl_id = bpf_map_lookup_elem(&nspr_ssl_ids, &tgid);
	bool layered = false, ssl = false;
	struct nspr_fd d;
	__s32 type;

	for (int i = 0; i < NSPR_MAX_LAYERS; i++) {
		if (!fd || bpf_probe_read_user(&d, sizeof(d), (void *)fd))
			return NSPR_LAYER_UNKNOWN;
		if (!d.methods || bpf_probe_read_user(&type, sizeof(type), (void *)d.methods))
			return NSPR_LAYER_UNKNOWN;
		if (ssl_id && d.identity == *ssl_id)
			ssl = true;
		if (type != PR_DESC_LAYERED) {
			if (!layered)
				return type >= PR_DESC_FILE && type <= PR_DESC_PIPE ? (__u32)type : NSPR_LAYER_UNKNOWN;
			if (ssl || (!ssl_id && type == PR_DESC_SOCKET_TCP))
				return NSPR_LAYER_SSL;
			return NSPR_LAYER_LAYERED;
		}
		layered = true;
		fd = d.lower;
	}
	/* Deeper than NSPR_MAX_LAYERS: what was seen decides. */
	return ssl ? NSPR_LAYER_SSL : NSPR_LAYER_LAYERED;
}

/*
 * nspr_enter is the entry of a data call on fd; extra is the iovec count
 * of PR_Writev (kept in the frame's outlen, which tls_data does not read).
 */
static __always_inline void nspr_enter(struct pt_regs *ctx, void *fd, void *buf, __u64 extra, __u32 fn, __u32 dir)
{
	__u32 layer;

	if (!fd || ecap_filtered())
		return;
	layer = nspr_layer((__u64)fd);
	if (nspr_ssl_only && layer != NSPR_LAYER_SSL)
		return;
	tls_enter_info(ctx, (__u64)fd, (__u64)buf, extra, fn, dir, layer);
}

/* Return of PR_Write, PR_Send, PR_Read, PR_Recv: ret > 0 bytes moved. */
static __always_inline int nspr_return(struct pt_regs *ctx)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct tls_frame f;

	if (!tls_leave(ctx, &f) || ret <= 0)
		return 0;
	tls_data(ctx, &f, (__u64)ret);
	return 0;
}

/* PRInt32 PR_Write(PRFileDesc *fd, const void *buf, PRInt32 amount) */
SEC("uprobe/PR_Write")
int BPF_UPROBE(uprobe_pr_write, void *fd, const void *buf)
{
	nspr_enter(ctx, fd, (void *)buf, 0, NSPR_FN_PR_WRITE, TLS_DIR_EGRESS);
	return 0;
}

/* PRInt32 PR_Send(PRFileDesc *fd, const void *buf, PRInt32 amount, PRIntn flags, PRIntervalTime timeout) */
SEC("uprobe/PR_Send")
int BPF_UPROBE(uprobe_pr_send, void *fd, const void *buf)
{
	nspr_enter(ctx, fd, (void *)buf, 0, NSPR_FN_PR_SEND, TLS_DIR_EGRESS);
	return 0;
}

/* PRInt32 PR_Read(PRFileDesc *fd, void *buf, PRInt32 amount) */
SEC("uprobe/PR_Read")
int BPF_UPROBE(uprobe_pr_read, void *fd, void *buf)
{
	nspr_enter(ctx, fd, buf, 0, NSPR_FN_PR_READ, TLS_DIR_INGRESS);
	return 0;
}

/* PRInt32 PR_Recv(PRFileDesc *fd, void *buf, PRInt32 amount, PRIntn flags, PRIntervalTime timeout) */
SEC("uprobe/PR_Recv")
int BPF_UPROBE(uprobe_pr_recv, void *fd, void *buf)
{
	nspr_enter(ctx, fd, buf, 0, NSPR_FN_PR_RECV, TLS_DIR_INGRESS);
	return 0;
}

/* PRInt32 PR_Writev(PRFileDesc *fd, const PRIOVec *iov, PRInt32 iov_size, PRIntervalTime timeout) */
SEC("uprobe/PR_Writev")
int BPF_UPROBE(uprobe_pr_writev, void *fd, const void *iov, int iov_size)
{
	if (iov_size <= 0)
		return 0;
	nspr_enter(ctx, fd, (void *)iov, (__u64)iov_size, NSPR_FN_PR_WRITEV, TLS_DIR_EGRESS);
	return 0;
}

SEC("uretprobe/PR_Write")
int BPF_URETPROBE(uretprobe_pr_write)
{
	return nspr_return(ctx);
}

SEC("uretprobe/PR_Send")
int BPF_URETPROBE(uretprobe_pr_send)
{
	return nspr_return(ctx);
}

SEC("uretprobe/PR_Read")
int BPF_URETPROBE(uretprobe_pr_read)
{
	return nspr_return(ctx);
}

SEC("uretprobe/PR_Recv")
int BPF_URETPROBE(uretprobe_pr_recv)
{
	return nspr_return(ctx);
}

/* What the iovec loop of PR_Writev needs; lives on its stack. */
struct nspr_writev_ctx {
	struct pt_regs *ctx;
	struct tls_frame f; /* f.buf: the PRIOVec array; f.outlen: their count */
	__u64 left;         /* bytes of the call's return not sent yet */
};

/* nspr_writev_one sends iovec i as a call of its own: a bpf_loop callback. */
static long nspr_writev_one(__u64 i, void *data)
{
	struct nspr_writev_ctx *c = data;
	struct tls_frame seg;
	struct nspr_iovec v;
	__u64 n;

	if (c->left == 0 || i >= c->f.outlen)
		return 1;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)(c->f.buf + i * sizeof(v))))
		return 1;
	n = v.len > 0 ? (__u64)v.len : 0;
	if (n > c->left)
		n = c->left;
	c->left -= n;
	if (n == 0)
		return 0;
	seg = c->f;
	seg.buf = v.base;
	seg.outlen = 0;
	tls_data(c->ctx, &seg, n);
	return 0;
}

/* Return of PR_Writev: the first ret bytes of the iovecs were written. */
SEC("uretprobe/PR_Writev")
int BPF_URETPROBE(uretprobe_pr_writev)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct nspr_writev_ctx c = {.ctx = ctx};

	if (!tls_leave(ctx, &c.f) || ret <= 0)
		return 0;
	c.left = (__u64)ret;
	bpf_loop(NSPR_MAX_IOV, nspr_writev_one, &c, 0);
	return 0;
}

/* PRStatus PR_Close(PRFileDesc *fd) */
SEC("uprobe/PR_Close")
int BPF_UPROBE(uprobe_pr_close, void *fd)
{
	if (fd)
		tls_session_free((__u64)fd);
	return 0;
}

/* PRDescIdentity PR_GetUniqueIdentity(const char *layer_name) */
SEC("uprobe/PR_GetUniqueIdentity")
int BPF_UPROBE(uprobe_pr_get_unique_identity, const char *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), one = 1;
	char n[4] = {};

	if (ecap_filtered() || bpf_probe_read_user_str(n, sizeof(n), name) != sizeof(n))
		return 0;
	if (n[0] == 'S' && n[1] == 'S' && n[2] == 'L')
		bpf_map_update_elem(&nspr_ident_calls, &tid, &one, BPF_ANY);
	return 0;
}

SEC("uretprobe/PR_GetUniqueIdentity")
int BPF_URETPROBE(uretprobe_pr_get_unique_identity)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	__s32 id = (__s32)PT_REGS_RC(ctx);

	if (!bpf_map_lookup_elem(&nspr_ident_calls, &tid))
		return 0;
	bpf_map_delete_elem(&nspr_ident_calls, &tid);
	if (id >= 0) /* PR_INVALID_IO_LAYER is -1 */
		bpf_map_update_elem(&nspr_ssl_ids, &tgid, &id, BPF_ANY);
	return 0;
}
