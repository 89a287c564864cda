// SPDX-License-Identifier: GPL-2.0
/*
 * gnutls_kern.c - the plaintext of GnuTLS connections (libgnutls.so.30).
 * User space: examples/gnutls/gnutlsmod. The mechanics (per-thread call
 * stack, connection without kprobes, chunked records) are those of
 * kern/include/tls.h of ecaphost, included from its checkout.
 *
 * Probes, on libgnutls.so.30:
 *
 *   uprobe+uretprobe gnutls_record_send   egress: the ret > 0 bytes of data
 *   uprobe+uretprobe gnutls_record_recv   ingress: the ret > 0 bytes of data
 *   uprobe gnutls_transport_set_int2      session -> fd (and the
 *                                         gnutls_transport_set_int macro)
 *   uprobe gnutls_deinit                  forget the session
 *   raw tracepoints sock_send_length, sock_recv_length, or the syscall
 *   tracepoints on older kernels (tls.h)  session -> socket
 */
/* Room for 1 MiB bursts: 64 records of 16 KiB; buffer_kib overrides it. */
#define ECAP_RINGBUF_SIZE (16 * 1024 * 1024)
#include "ecap.h"
#include "tls.h"

char LICENSE[] SEC("license") = "GPL";

/* tls_data_event.fn: gnutlsmod names them. */
enum gnutls_fn {
	GNUTLS_FN_RECORD_SEND = 1,
	GNUTLS_FN_RECORD_RECV = 2,
};

/* ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t data_size) */
SEC("uprobe/gnutls_record_send")
int BPF_UPROBE(uprobe_gnutls_record_send, void *session, const void *data)
{
	tls_enter(ctx, (__u64)session, (__u64)data, 0, GNUTLS_FN_RECORD_SEND, TLS_DIR_EGRESS);
	return 0;
}

/* ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t data_size) */
SEC("uprobe/gnutls_record_recv")
int BPF_UPROBE(uprobe_gnutls_record_recv, void *session, void *data)
{
	tls_enter(ctx, (__u64)session, (__u64)data, 0, GNUTLS_FN_RECORD_RECV, TLS_DIR_INGRESS);
	return 0;
}

/* Both return the bytes moved (> 0), 0 at end of stream, or a negative error code. */
static __always_inline int gnutls_return(struct pt_regs *ctx)
{
	long ret = (long)PT_REGS_RC(ctx);
	struct tls_frame f;

	if (!tls_leave(ctx, &f) || ret <= 0)
		return 0;
	tls_data(ctx, &f, (__u64)ret);
	return 0;
}

SEC("uretprobe/gnutls_record_send")
int BPF_URETPROBE(uretprobe_gnutls_record_send)
{
	return gnutls_return(ctx);
}

SEC("uretprobe/gnutls_record_recv")
int BPF_URETPROBE(uretprobe_gnutls_record_recv)
{
	return gnutls_return(ctx);
}

/* void gnutls_transport_set_int2(gnutls_session_t session, int recv_fd, int send_fd) */
SEC("uprobe/gnutls_transport_set_int2")
int BPF_UPROBE(uprobe_gnutls_transport_set_int2, void *session, int recv_fd)
{
	tls_set_fd((__u64)session, recv_fd);
	return 0;
}

/* void gnutls_deinit(gnutls_session_t session) */
SEC("uprobe/gnutls_deinit")
int BPF_UPROBE(uprobe_gnutls_deinit, void *session)
{
	if (session)
		tls_session_free((__u64)session);
	return 0;
}
