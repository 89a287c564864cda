// SPDX-License-Identifier: GPL-2.0
/*
 * openssl_kern.c - the plaintext of OpenSSL 1.1.1 and 3.x TLS connections.
 * User space: plugins/openssl/opensslmod. The mechanics (per-thread call
 * stack, connection without kprobes, chunked records) are in
 * kern/include/tls.h.
 *
 * Probes, on libssl.so or a binary linking OpenSSL statically:
 *
 *   uprobe+uretprobe SSL_write, SSL_write_ex   egress: the bytes of buf the
 *   uprobe+uretprobe SSL_read,  SSL_read_ex    call reports it moved: ret > 0
 *                                              for SSL_write/SSL_read, or
 *                                              *written or *readbytes when the
 *                                              _ex form returns 1
 *   uprobe SSL_set_fd, SSL_set_rfd, SSL_set_wfd   session -> fd
 *   uprobe SSL_free                               forget the session
 *   tracepoints syscalls/sys_enter_{read,write,...} (tls.h)  session -> fd
 *
 * SSL_peek is not probed: its bytes come again from SSL_read.
 */
/* Room for 1 MiB bursts: 64 records of 16 KiB; buffer_kib overrides it. */
#define ECAP_RINGBUF_SIZE (16 * 1024 * 1024)
#include "ecap.h"
#include "tls.h"

char LICENSE[] SEC("license") = "GPL";

/* tls_data_event.fn */
enum openssl_fn {
	OPENSSL_FN_SSL_WRITE = 1,
	OPENSSL_FN_SSL_READ = 2,
	OPENSSL_FN_SSL_WRITE_EX = 3,
	OPENSSL_FN_SSL_READ_EX = 4,
};

/* int SSL_write(SSL *ssl, const void *buf, int num) */
SEC("uprobe/SSL_write")
int BPF_UPROBE(uprobe_ssl_write, void *ssl, const void *buf)
{
	tls_enter(ctx, (__u64)ssl, (__u64)buf, 0, OPENSSL_FN_SSL_WRITE, TLS_DIR_EGRESS);
	return 0;
}

/* int SSL_read(SSL *ssl, void *buf, int num) */
SEC("uprobe/SSL_read")
int BPF_UPROBE(uprobe_ssl_read, void *ssl, void *buf)
{
	tls_enter(ctx, (__u64)ssl, (__u64)buf, 0, OPENSSL_FN_SSL_READ, TLS_DIR_INGRESS);
	return 0;
}

/* int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) */
SEC("uprobe/SSL_write_ex")
int BPF_UPROBE(uprobe_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	tls_enter(ctx, (__u64)ssl, (__u64)buf, (__u64)written, OPENSSL_FN_SSL_WRITE_EX, TLS_DIR_EGRESS);
	return 0;
}

/* int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) */
SEC("uprobe/SSL_read_ex")
int BPF_UPROBE(uprobe_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	tls_enter(ctx, (__u64)ssl, (__u64)buf, (__u64)readbytes, OPENSSL_FN_SSL_READ_EX, TLS_DIR_INGRESS);
	return 0;
}

/* Return of SSL_write and SSL_read: ret > 0 bytes moved. */
static __always_inline int openssl_return_int(struct pt_regs *ctx)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct tls_frame f;

	if (!tls_leave(ctx, &f) || ret <= 0)
		return 0;
	tls_data(ctx, &f, (__u64)ret);
	return 0;
}

/* Return of the _ex forms: 1 on success, the count in the out-parameter. */
static __always_inline int openssl_return_ex(struct pt_regs *ctx)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct tls_frame f;
	__u64 n = 0;

	if (!tls_leave(ctx, &f) || ret != 1 || !f.outlen)
		return 0;
	if (bpf_probe_read_user(&n, sizeof(n), (void *)f.outlen))
		return 0;
	tls_data(ctx, &f, n);
	return 0;
}

SEC("uretprobe/SSL_write")
int BPF_URETPROBE(uretprobe_ssl_write)
{
	return openssl_return_int(ctx);
}

SEC("uretprobe/SSL_read")
int BPF_URETPROBE(uretprobe_ssl_read)
{
	return openssl_return_int(ctx);
}

SEC("uretprobe/SSL_write_ex")
int BPF_URETPROBE(uretprobe_ssl_write_ex)
{
	return openssl_return_ex(ctx);
}

SEC("uretprobe/SSL_read_ex")
int BPF_URETPROBE(uretprobe_ssl_read_ex)
{
	return openssl_return_ex(ctx);
}

/* int SSL_set_fd(SSL *s, int fd), and SSL_set_rfd, SSL_set_wfd: one program. */
SEC("uprobe/SSL_set_fd")
int BPF_UPROBE(uprobe_ssl_set_fd, void *ssl, int fd)
{
	tls_set_fd((__u64)ssl, fd);
	return 0;
}

/* void SSL_free(SSL *ssl) */
SEC("uprobe/SSL_free")
int BPF_UPROBE(uprobe_ssl_free, void *ssl)
{
	if (ssl)
		tls_session_free((__u64)ssl);
	return 0;
}
