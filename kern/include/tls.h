/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tls.h - plaintext capture for TLS library modules (OpenSSL, and later
 * NSPR, GnuTLS...): the record they send, the per-thread bookkeeping of
 * library calls, the connection of a library session found without
 * kprobes, and the chunked output of calls of any length.
 *
 * Include it once, from the module's single .c file, after ecap.h: like
 * ecap.h it defines maps, and it also defines the syscall tracepoint
 * programs tp_sys_enter_{read,readv,recvfrom,recvmsg,write,writev,sendto,
 * sendmsg} (sections tracepoint/syscalls/sys_enter_*), which the module
 * attaches. CO-RE build only: it reads kernel structs.
 *
 * How a module uses it, for a library function f(session, buf, ...) that
 * reads or writes plaintext:
 *
 *   uprobe f      tls_enter(ctx, session, buf, outlen_ptr, fn, dir)
 *   uretprobe f   if (tls_leave(ctx, &frame)) tls_data(ctx, &frame, len)
 *   uprobe g      tls_set_fd(session, fd)   for SSL_set_fd and the like
 *   uprobe free   tls_session_free(session) when the library frees it
 *
 * Calls. tls_enter pushes a frame (session, buffer, out-parameter, stack
 * pointer) on a small per-thread stack, tls_leave pops the frame whose
 * stack pointer matches the returning call. Nested calls (TLS inside TLS,
 * e.g. a client going through an HTTPS proxy) each find their own frame;
 * frames of calls that never returned (longjmp, a return probe attached
 * after the call began) are dropped as soon as the stack shows they are
 * dead. While a thread has a frame it is "inside a library call".
 *
 * Connection. A session's fd comes from tls_set_fd, or from the syscall
 * tracepoints: a read/readv/recvfrom/recvmsg/write/writev/sendto/sendmsg
 * on a socket, entered by a thread inside a library call, is the I/O of
 * the innermost call's session. At each call tls_data resolves the fd of
 * the current task: task->files->fdt->fd[fd], a socket inode
 * (S_IFSOCK), file->private_data is the struct socket, socket->sk the
 * struct sock whose __sk_common gives family, addresses and ports.
 *
 * Records. Each call that moved n > 0 bytes becomes ceil(m / TLS_CHUNK_MAX)
 * records struct tls_data_event carrying its first m bytes (bpf_loop over a
 * per-CPU scratch record, each record as long as its data), where m is n
 * cut to the snap length: the smallest of TLS_CALL_MAX, tls_max_data (the
 * max_data setting; 0: none) and, from when the ring buffer holds more than
 * half its size until it holds less than a quarter (tls_overload), or while
 * user space says the host is behind (tls_host_behind), tls_overload_data
 * (a few KiB: any HTTP head). A call that
 * is cut still has total n in every record: its last record carries
 * TLS_F_TRUNCATED, and the call is counted in tls_stats[TLS_STAT_CUT], its
 * bytes not sent in tls_stats[TLS_STAT_CUT_BYTES], and, when the filling
 * ring cut it, in tls_stats[TLS_STAT_CUT_OVERLOAD] (a call longer than
 * TLS_CALL_MAX also in tls_stats[TLS_STAT_TRUNCATED]). So an overloaded
 * host still gets every call, short, instead of losing whole records; full
 * records resume once the ring is less than a quarter full. A record the
 * ring buffer cannot take is counted in ecap_lost (ecap_output).
 *
 * Writes at entry. A write's plaintext is all in its buffer when the call
 * begins, so a module may capture it from the entry probe alone and spare
 * the return probe, whose trap costs a busy TLS server about 6% of its
 * throughput:
 *
 *   uprobe write  tls_write_at_entry(ctx, session, buf, len, fn, info)
 *
 * The catch is a write the library could not finish: a non-blocking send
 * failing with EAGAIN makes SSL_write return WANT_WRITE, and the caller
 * calls again with the same buffer (or, with partial writes, with the rest
 * of it). The socket probes see that failed send on the session's socket
 * while the thread's last call is the write, and mark the session; its
 * next write that is the same call again (the same length, or a tail of
 * the same buffer) is not captured twice. Needs the sock tracepoints (the
 * syscall tracepoints do not see results): without them, a module keeps
 * the return probe (tls_enter / tls_leave / tls_data). A write that fails
 * for good (the peer reset the connection) is still shown as written.
 *
 * Sessions. tls_sessions maps (tgid, session pointer) to a serial number
 * (the bpf_ktime_get_ns() of its first sight) and a call counter per
 * direction, so user space can tell a session from a later one at the same
 * address (after tls_session_free) and spot missing records of a direction
 * (call_seq, offset).
 */
#ifndef ECAP_TLS_H
#define ECAP_TLS_H

#ifndef ECAP_H
#error "include ecap.h before tls.h"
#endif
#ifdef ECAP_NONCORE
#error "tls.h reads kernel structs: it needs the CO-RE build"
#endif

#include <bpf/bpf_endian.h>

/* TLS_CHUNK_MAX is the most data one record carries. */
#define TLS_CHUNK_MAX (16 * 1024)
/* TLS_CALL_MAX is the most data one call sends; the rest is truncated. */
#define TLS_CALL_MAX (16 * 1024 * 1024)
#define TLS_MAX_CHUNKS (TLS_CALL_MAX / TLS_CHUNK_MAX)
/* TLS_DEPTH is how many nested library calls a thread can be inside (a power of two). */
#define TLS_DEPTH 4

/* ecap_hdr.kind of struct tls_data_event. */
#define TLS_KIND_DATA 1

/* ecap_hdr.flags of struct tls_data_event. */
enum tls_flags {
	TLS_F_TRUNCATED = 1 << 0, /* last record of a call cut to the snap length: total says its length */
	TLS_F_FAULT = 1 << 1,     /* the chunk could not be read from the process: no data */
	TLS_F_LAST = 1 << 2,      /* last record of the call */
};

/* tls_data_event.dir, the values of Go's sdk.Direction. */
enum tls_dir {
	TLS_DIR_EGRESS = 1,  /* the process wrote: SSL_write... */
	TLS_DIR_INGRESS = 2, /* the process read: SSL_read... */
};

/* Indexes of the per-CPU counters tls_stats. */
enum tls_stat {
	TLS_STAT_TRUNCATED = 0, /* calls longer than TLS_CALL_MAX */
	TLS_STAT_FAULT = 1,     /* chunks that could not be read from the process */
	TLS_STAT_DEPTH = 2,     /* calls not captured: nested deeper than TLS_DEPTH */
	TLS_STAT_CUT = 3,       /* calls cut to the snap length (every reason) */
	TLS_STAT_CUT_BYTES = 4, /* bytes of those calls not sent */
	TLS_STAT_CUT_OVERLOAD = 5, /* calls cut because the ring buffer was filling or the host behind */
	TLS_STAT_MAX = 6,
};

/*
 * Snap lengths, set by user space before load. tls_max_data is the most
 * bytes of a call sent (the max_data setting); 0: TLS_CALL_MAX.
 * tls_overload_data is the most sent while the ring buffer is filling (over
 * half full, until under a quarter) or the host is behind; 0: never cut
 * for that.
 */
const volatile __u32 tls_max_data = 0;
const volatile __u32 tls_overload_data = 4096;

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define TLS_S_IFMT 0170000
#define TLS_S_IFSOCK 0140000

/*
 * The stack pointer a return probe sees, less the one the entry probe saw
 * for the same call: x86 `ret` pops the return address, arm64 and others
 * return through a link register.
 */
#if defined(__TARGET_ARCH_x86)
#define TLS_RET_SP_DELTA 8
#else
#define TLS_RET_SP_DELTA 0
#endif

/*
 * struct tls_data_event is one chunk of the plaintext of one library call:
 * hdr.len bytes of data follow the fixed fields (the record is no longer
 * than that). No implicit padding; Go twin and decoder in sdk/tlsrecord
 * (tlsrecord.Record), checked through each module's object's BTF.
 */
struct tls_data_event {
	struct ecap_hdr hdr; /* kind TLS_KIND_DATA, len: bytes in data, flags: enum tls_flags */
	__u64 session;       /* the library's session pointer (SSL *, PRFileDesc *...) */
	__u64 serial;        /* tells sessions at one address apart: bpf_ktime_get_ns() of first sight */
	__u64 call_seq;      /* 1, 2, ...: calls of the session in direction dir that moved data */
	__u64 total;         /* bytes the call moved (may exceed TLS_CALL_MAX) */
	__u64 offset;        /* of this chunk within the call */
	__s32 fd;            /* -1: unknown */
	__u16 family;        /* AF_INET, AF_INET6, another socket family, or 0: unknown */
	__u16 lport;         /* local port, host byte order */
	__u16 rport;         /* remote port, host byte order */
	__u8 fn;             /* module-defined: which library function */
	__u8 dir;            /* enum tls_dir */
	__u32 info;          /* module-defined, from tls_enter_info (e.g. NSPR's descriptor layer); 0 by tls_enter */
	__u8 laddr[16];      /* local address: 4 bytes for AF_INET, 16 for AF_INET6 */
	__u8 raddr[16];      /* remote address */
	__u8 data[TLS_CHUNK_MAX];
};

/* A library call in progress on a thread. */
struct tls_frame {
	__u64 session;
	__u64 buf;
	__u64 outlen; /* user address of the size_t out-parameter (_ex forms), 0 if none */
	__u64 sp;     /* stack pointer at entry */
	__u32 fn;
	__u32 dir;
	__u32 info;   /* copied into tls_data_event.info */
	__u32 reserved;
};

struct tls_stack {
	struct tls_frame f[TLS_DEPTH];
	__u32 depth;
	__u32 reserved;
	/* The last write captured at entry (tls_write_at_entry) on this
	 * thread, until the thread enters another library call: the socket
	 * probes charge a failed send on its session's socket to it. */
	__u64 wsession; /* 0: none */
	__u64 wbuf;
	__u64 wlen;
	/* The session whose connection the socket probes last found cached
	 * as the socket csk, when tls_frees was cgen: while the thread's
	 * innermost session and the socket are these and no session was
	 * freed since, the probes skip the session lookup. Cleared when a
	 * new session appears at csession's address. */
	__u64 csession; /* 0: none */
	__u64 csk;
	__u64 cgen;
};

struct tls_session_key {
	__u32 tgid;
	__u32 reserved;
	__u64 session;
};

struct tls_session {
	__u64 serial;
	__u64 calls_out; /* calls that moved data, egress */
	__u64 calls_in;  /* and ingress */
	/* The connection, read once from the socket (reading it on every
	 * call cost more than the rest of the call's probe): conn_sk is the
	 * struct sock it was read from, 0 when none was read yet. */
	__u64 conn_sk;
	__s32 fd;        /* from SSL_set_fd and the like; -1: unknown */
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 reserved;
	__u32 reserved2;
	__u8 laddr[16];
	__u8 raddr[16];
	/* A write captured at entry that a send on the session's socket
	 * failed inside (EAGAIN...): the library will be called again for
	 * the rest of [wpend_buf, wpend_buf + wpend_len), which must not be
	 * captured twice. wpend_len 0: none. */
	__u64 wpend_buf;
	__u64 wpend_len;
};

/*
 * Each thread's library calls, in the thread's own storage: found without
 * hashing, and freed with the thread. Needs task storage in uprobe and
 * tracepoint programs (checked on Linux 6.18; the load fails clearly
 * where the kernel lacks it).
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_stack);
} tls_calls SEC(".maps");

/* (tgid, session) -> serial, call counter and fd. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_session_key);
	__type(value, struct tls_session);
} tls_sessions SEC(".maps");

/* Per-CPU counters, indexed by enum tls_stat; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TLS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_stats SEC(".maps");

/*
 * tls_overload[0] is 1 while calls are cut because the ring buffer filled:
 * from over half full until under a quarter full again, so that a host
 * that fell behind catches up on short records instead of refilling the
 * ring with full ones as soon as it is under half. CPUs share it; a race
 * between them costs at most a call cut or not.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tls_overload SEC(".maps");

/*
 * tls_host_behind[0] is 1 while user space says the host is not keeping
 * up (ebpfbase.Spec.BehindMap: its data channel backs up), 0 otherwise:
 * calls are cut then as while the ring is filling, before the backlog
 * between the host and the ring (data channel, plugin queue) fills the
 * ring too. Written by user space only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tls_host_behind SEC(".maps");

ECAP_SCRATCH(tls_scratch, struct tls_data_event);

/*
 * tls_slot is i & (TLS_DEPTH - 1) in a form the verifier sees: clang
 * would fold a plain mask into an earlier range check on another register.
 */
static __always_inline __u64 tls_slot(__u64 i)
{
	asm volatile("%0 &= %1" : "+r"(i) : "i"(TLS_DEPTH - 1));
	return i;
}

static __always_inline void tls_add(__u32 stat, __u64 v)
{
	__u64 *n = bpf_map_lookup_elem(&tls_stats, &stat);

	if (n)
		__sync_fetch_and_add(n, v);
}

static __always_inline void tls_count(__u32 stat)
{
	tls_add(stat, 1);
}

/* tls_thread_get returns the current thread's call stack, NULL if it has none. */
static __always_inline struct tls_stack *tls_thread_get(void)
{
	return bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), 0, 0);
}

/* tls_thread returns the current thread's call stack, created (zeroed) if new. */
static __always_inline struct tls_stack *tls_thread(void)
{
	return bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/*
 * tls_frees counts the sessions freed (tls_session_free), in every
 * process: a thread's memory of a session's socket (tls_stack.csession)
 * holds only while it does not change, since a new session may take a
 * freed one's address, and a new socket a closed one's.
 */
__u64 tls_frees = 0;

/* tls_forget_conn clears the thread's cached connection if it is session's. */
static __always_inline void tls_forget_conn(__u64 session)
{
	struct tls_stack *st = tls_thread_get();

	if (st && st->csession == session)
		st->csession = 0;
}

/* tls_session_get returns the state of session in the current process, created if new. */
static __always_inline struct tls_session *tls_session_get(__u64 session)
{
	struct tls_session_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = session};
	struct tls_session *s = bpf_map_lookup_elem(&tls_sessions, &key);
	struct tls_session init = {};

	if (s)
		return s;
	/* A new session at the address of a freed one: the thread must not
	 * take its socket for the old one's. */
	tls_forget_conn(session);
	init.serial = bpf_ktime_get_ns();
	init.fd = -1;
	bpf_map_update_elem(&tls_sessions, &key, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&tls_sessions, &key);
}

/* tls_set_fd records that session does its I/O on fd (SSL_set_fd...). */
static __always_inline void tls_set_fd(__u64 session, int fd)
{
	struct tls_session *s;

	if (!session || fd < 0 || ecap_filtered())
		return;
	s = tls_session_get(session);
	if (s)
		s->fd = fd;
}

/* tls_session_free forgets session: the next one at its address is a new session. */
static __always_inline void tls_session_free(__u64 session)
{
	struct tls_session_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = session};

	bpf_map_delete_elem(&tls_sessions, &key);
	/* Counted even when the session had no state left (the LRU map may
	 * have dropped it): a thread may still remember its socket. */
	__sync_fetch_and_add(&tls_frees, 1);
}

/* tls_fd_sock returns the struct sock of fd in the current task, NULL if fd is not a socket. */
static __always_inline struct sock *tls_fd_sock(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	umode_t mode;

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds || bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & TLS_S_IFMT) != TLS_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/*
 * tls_cache_conn reads the family, addresses and ports of sk into the
 * session's cache.
 */
static __always_inline void tls_cache_conn(struct tls_session *s, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	s->conn_sk = (__u64)sk;
	s->family = family;
	s->lport = 0;
	s->rport = 0;
	__builtin_memset(s->laddr, 0, sizeof(s->laddr));
	__builtin_memset(s->raddr, 0, sizeof(s->raddr));
	if (family != AF_INET && family != AF_INET6)
		return;
	s->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(s->laddr, &l, sizeof(l));
		__builtin_memcpy(s->raddr, &r, sizeof(r));
	} else {
		BPF_CORE_READ_INTO(&s->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&s->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

/*
 * tls_enter_info records that the current thread entered a library call on
 * session with buffer buf; outlen is the user address of the call's size_t
 * out-parameter, 0 if it has none (a module may give it another meaning:
 * tls_data does not read it); info is module-defined and travels to every
 * record of the call (tls_data_event.info). Call it from the entry uprobe.
 */
static __always_inline void tls_enter_info(struct pt_regs *ctx, __u64 session, __u64 buf, __u64 outlen, __u32 fn, __u32 dir,
					   __u32 info)
{
	__u64 sp = PT_REGS_SP(ctx);
	struct tls_stack *st;
	struct tls_frame *f;
	__u32 d;

	if (ecap_filtered())
		return;
	st = tls_thread();
	if (!st)
		return;
	st->wsession = 0; /* the last write at entry has returned */
	/*
	 * A frame entered at or below this stack pointer belongs to a call
	 * that has ended without its return probe: drop it.
	 */
#pragma unroll
	for (int i = 0; i < TLS_DEPTH; i++) {
		d = st->depth;
		if (d == 0 || d > TLS_DEPTH || st->f[tls_slot(d - 1)].sp > sp)
			break;
		st->depth = d - 1;
	}
	d = st->depth;
	if (d >= TLS_DEPTH) {
		tls_count(TLS_STAT_DEPTH);
		return;
	}
	f = &st->f[tls_slot(d)];
	f->session = session;
	f->buf = buf;
	f->outlen = outlen;
	f->sp = sp;
	f->fn = fn;
	f->dir = dir;
	f->info = info;
	f->reserved = 0;
	st->depth = d + 1;
}

/* tls_enter is tls_enter_info with info 0. */
static __always_inline void tls_enter(struct pt_regs *ctx, __u64 session, __u64 buf, __u64 outlen, __u32 fn, __u32 dir)
{
	tls_enter_info(ctx, session, buf, outlen, fn, dir, 0);
}

/*
 * tls_leave pops the frame of the call the return probe ctx is returning
 * from into *out. It returns false when the call was entered before the
 * entry probe was attached (or filtered out).
 */
static __always_inline bool tls_leave(struct pt_regs *ctx, struct tls_frame *out)
{
	__u64 sp = PT_REGS_SP(ctx) - TLS_RET_SP_DELTA;
	struct tls_stack *st = tls_thread_get();
	struct tls_frame *f;
	bool found = false;
	__u32 d;

	if (!st)
		return false;
#pragma unroll
	for (int i = 0; i < TLS_DEPTH; i++) {
		d = st->depth;
		if (d == 0 || d > TLS_DEPTH)
			break;
		f = &st->f[tls_slot(d - 1)];
		if (f->sp > sp)
			break; /* an outer call still running */
		st->depth = d - 1;
		if (f->sp == sp) {
			*out = *f;
			found = true;
			break;
		}
		/* f->sp < sp: a deeper call that never returned */
	}
	/* An empty stack stays in the thread's storage: deleting and
	 * re-creating it for every call cost more than the rest of both
	 * probes. */
	return found;
}

/*
 * tls_on_syscall is the body of the syscall tracepoints: fd, used by a
 * thread inside a library call, is its innermost session's socket.
 */
static __always_inline int tls_on_syscall(struct trace_event_raw_sys_enter *ctx)
{
	struct tls_stack *st = tls_thread_get();
	struct tls_session *s;
	__u64 session;
	int fd;
	__u32 d;

	if (!st)
		return 0;
	d = st->depth;
	if (d == 0 || d > TLS_DEPTH)
		return 0;
	session = st->f[tls_slot(d - 1)].session;
	fd = (int)BPF_CORE_READ(ctx, args[0]);
	if (!session)
		return 0;
	s = tls_session_get(session);
	/* The usual case: the session's socket is known already. */
	if (!s || s->fd == fd || !tls_fd_sock(fd))
		return 0;
	s->fd = fd;
	return 0;
}

/*
 * tls_on_sock is the body of the sock_send_length / sock_recv_length
 * probes: sk, sending or receiving for a thread inside a library call, is
 * its innermost session's socket. These tracepoints fire only for socket
 * I/O; the syscall tracepoints above put every syscall of every task on
 * the kernel's slow path while attached, which cost a TLS server a third
 * of its throughput in make bench. Prefer TLS_SOCK_PROBES.
 *
 * A send that failed (ret < 0) on the socket of the thread's last write
 * at entry marks that write pending (see "Writes at entry").
 */
static __always_inline int tls_on_sock(struct sock *sk, int ret, bool send)
{
	struct tls_stack *st = tls_thread_get();
	struct tls_session_key key = {};
	struct tls_session *s;
	__u64 session, gen;
	__u32 d;

	if (!st || !sk)
		return 0;
	if (send && ret < 0 && st->wsession) {
		key.tgid = bpf_get_current_pid_tgid() >> 32;
		key.session = st->wsession;
		s = bpf_map_lookup_elem(&tls_sessions, &key);
		if (s && s->conn_sk == (__u64)sk) {
			s->wpend_buf = st->wbuf;
			s->wpend_len = st->wlen;
		}
	}
	d = st->depth;
	if (d == 0 || d > TLS_DEPTH)
		return 0;
	session = st->f[tls_slot(d - 1)].session;
	gen = tls_frees; /* read before the session, so that a free in between shows next time */
	if (!session || (session == st->csession && (__u64)sk == st->csk && gen == st->cgen))
		return 0; /* the usual case: known already */
	s = tls_session_get(session);
	if (!s)
		return 0;
	if (s->conn_sk != (__u64)sk || !s->rport)
		tls_cache_conn(s, sk);
	if (s->rport) {
		st->csession = session;
		st->csk = (__u64)sk;
		st->cgen = gen;
	}
	return 0;
}

/* TLS_SOCK_PROBES defines the raw tracepoint programs
 * rtp_sock_send_length and rtp_sock_recv_length (Linux 6.3+); their
 * arguments are (struct sock *sk, int ret, int flags). */
#define TLS_SOCK_PROBES                                                        \
	SEC("raw_tracepoint/sock_send_length")                                 \
	int rtp_sock_send_length(struct bpf_raw_tracepoint_args *ctx)          \
	{                                                                      \
		return tls_on_sock((struct sock *)ctx->args[0],                \
				   (int)ctx->args[1], true);                   \
	}                                                                      \
	SEC("raw_tracepoint/sock_recv_length")                                 \
	int rtp_sock_recv_length(struct bpf_raw_tracepoint_args *ctx)          \
	{                                                                      \
		return tls_on_sock((struct sock *)ctx->args[0],                \
				   (int)ctx->args[1], false);                  \
	}

#define TLS_SYSCALL_TRACEPOINT(name)                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                    \
	int tp_sys_enter_##name(struct trace_event_raw_sys_enter *ctx) \
	{                                                              \
		return tls_on_syscall(ctx);                            \
	}

TLS_SYSCALL_TRACEPOINT(read)
TLS_SYSCALL_TRACEPOINT(readv)
TLS_SYSCALL_TRACEPOINT(recvfrom)
TLS_SYSCALL_TRACEPOINT(recvmsg)
TLS_SYSCALL_TRACEPOINT(write)
TLS_SYSCALL_TRACEPOINT(writev)
TLS_SYSCALL_TRACEPOINT(sendto)
TLS_SYSCALL_TRACEPOINT(sendmsg)

TLS_SOCK_PROBES

/* What the chunk loop needs; lives on the stack of tls_data. */
struct tls_emit_ctx {
	void *ctx;
	__u64 buf;
	__u64 len;       /* bytes to send: the call's, cut to the snap length */
	__u32 truncated; /* TLS_F_TRUNCATED if the call moved more than len */
	__u32 reserved;
};

/* tls_emit_chunk sends chunk i of a call: a bpf_loop callback. */
static long tls_emit_chunk(__u64 i, void *data)
{
	struct tls_emit_ctx *c = data;
	struct tls_data_event *e = ecap_scratch(&tls_scratch);
	__u64 off = i * TLS_CHUNK_MAX, n;
	__u32 flags = 0;

	if (!e || off >= c->len)
		return 1;
	n = c->len - off;
	if (n > TLS_CHUNK_MAX)
		n = TLS_CHUNK_MAX;
	if (off + n == c->len)
		flags |= TLS_F_LAST | c->truncated;
	if (bpf_probe_read_user(e->data, n, (void *)(c->buf + off))) {
		tls_count(TLS_STAT_FAULT);
		flags |= TLS_F_FAULT;
		n = 0;
	}
	e->hdr.len = n; /* hdr.timestamp_ns: the call's, from tls_data */
	e->hdr.flags = flags;
	e->offset = off;
	ecap_output(c->ctx, e, __builtin_offsetof(struct tls_data_event, data) + n);
	return 0;
}

/*
 * tls_snap returns how many of the len bytes of a call to send (see
 * "Records"), setting *overload when the filling ring buffer cut it.
 */
static __always_inline __u64 tls_snap(__u64 len, bool *overload)
{
	__u64 snap = TLS_CALL_MAX;

	if (tls_max_data && tls_max_data < snap)
		snap = tls_max_data;
#ifndef ECAP_PERF_OUTPUT
	/* The ring is queried only for a call that would be cut. */
	if (tls_overload_data && tls_overload_data < snap && len > tls_overload_data) {
		__u32 zero = 0;
		__u32 *cutting = bpf_map_lookup_elem(&tls_overload, &zero);
		__u64 avail = bpf_ringbuf_query(&ecap_events, BPF_RB_AVAIL_DATA);
		__u64 size = bpf_ringbuf_query(&ecap_events, BPF_RB_RING_SIZE);

		__u32 *behind = bpf_map_lookup_elem(&tls_host_behind, &zero);

		if (!cutting || !behind)
			return snap;
		if (*cutting && avail < size / 4)
			*cutting = 0;
		else if (!*cutting && avail > size / 2)
			*cutting = 1;
		if (*cutting || *behind) {
			*overload = true;
			snap = tls_overload_data;
		}
	}
#endif
	return snap;
}

/*
 * tls_data_of sends the len > 0 bytes the call of frame f moved from
 * f->buf (not 0), with the connection of its session's state s (NULL:
 * unknown). Its callers check len and buf before looking the session up.
 */
static __always_inline void tls_data_of(struct pt_regs *ctx, const struct tls_frame *f, __u64 len, struct tls_session *s)
{
	struct tls_emit_ctx c = {.ctx = ctx, .buf = f->buf, .len = len};
	struct tls_data_event *e;
	bool overload = false;
	struct sock *sk;
	__u64 snap;

	e = ecap_scratch(&tls_scratch);
	if (!e)
		return;
	ecap_fill_hdr(&e->hdr, TLS_KIND_DATA);
	e->session = f->session;
	e->serial = 0;
	e->call_seq = 0;
	e->fd = -1;
	if (s) {
		e->serial = s->serial;
		e->call_seq = f->dir == TLS_DIR_INGRESS ? ++s->calls_in : ++s->calls_out;
		e->fd = s->fd;
	}
	e->total = len;
	e->offset = 0;
	e->family = 0;
	e->lport = 0;
	e->rport = 0;
	e->fn = f->fn;
	e->dir = f->dir;
	e->info = f->info;
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	if (s) {
		/* A connection's addresses do not change: read them once. A
		 * socket not connected yet (no remote port) is read again. */
		if ((!s->conn_sk || !s->rport) && s->fd >= 0) {
			sk = tls_fd_sock(s->fd);
			if (sk)
				tls_cache_conn(s, sk);
		}
		if (s->conn_sk) {
			e->family = s->family;
			e->lport = s->lport;
			e->rport = s->rport;
			__builtin_memcpy(e->laddr, s->laddr, sizeof(e->laddr));
			__builtin_memcpy(e->raddr, s->raddr, sizeof(e->raddr));
		}
	}

	snap = tls_snap(len, &overload);
	if (len > snap) {
		c.len = snap;
		c.truncated = TLS_F_TRUNCATED;
		tls_count(TLS_STAT_CUT);
		tls_add(TLS_STAT_CUT_BYTES, len - c.len);
		if (overload)
			tls_count(TLS_STAT_CUT_OVERLOAD);
		if (len > TLS_CALL_MAX)
			tls_count(TLS_STAT_TRUNCATED);
	}
	if (c.len <= TLS_CHUNK_MAX)
		tls_emit_chunk(0, &c); /* the usual case: no loop set-up */
	else
		bpf_loop((c.len + TLS_CHUNK_MAX - 1) / TLS_CHUNK_MAX, tls_emit_chunk, &c, 0);
}

/*
 * tls_data sends the len bytes the call of frame f moved, with the
 * session's connection. Call it from the return probe once the call is
 * known to have moved len > 0 bytes.
 */
static __always_inline void tls_data(struct pt_regs *ctx, const struct tls_frame *f, __u64 len)
{
	if (len && f->buf)
		tls_data_of(ctx, f, len, tls_session_get(f->session));
}

/*
 * tls_write_at_entry captures the len bytes at buf that a library write
 * on session is about to send, from the write's entry probe, unless the
 * call is the library being called again for a write captured already
 * (see "Writes at entry"). info is module-defined, as in tls_enter_info.
 */
static __always_inline void tls_write_at_entry(struct pt_regs *ctx, __u64 session, __u64 buf, __u64 len, __u32 fn,
					       __u32 info)
{
	struct tls_frame f = {.session = session, .buf = buf, .fn = fn, .dir = TLS_DIR_EGRESS, .info = info};
	struct tls_session *s;
	struct tls_stack *st;
	__u64 end;

	if (!session || !buf || !len || ecap_filtered())
		return;
	st = tls_thread();
	if (!st)
		return;
	st->wsession = session;
	st->wbuf = buf;
	st->wlen = len;
	s = tls_session_get(session);
	if (s && s->wpend_len) {
		end = s->wpend_buf + s->wpend_len;
		s->wpend_len = 0;
		/* The same call again: the same length (a caller may move its
		 * buffer, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), or what is left
		 * of the buffer after a partial write. */
		if (len == end - s->wpend_buf || (buf >= s->wpend_buf && buf + len == end))
			return;
	}
	tls_data_of(ctx, &f, len, s);
}

#endif /* ECAP_TLS_H */
