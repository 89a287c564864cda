// SPDX-License-Identifier: GPL-2.0
/*
 * openssl_kern.c - OpenSSL 1.1.1 and 3.x: the plaintext of TLS connections
 * (text mode), the secrets of each TLS session (keylog and pcap modes), and
 * the packets of an interface (pcap mode). User space:
 * plugins/openssl/opensslmod. The mechanics of the plaintext capture
 * (per-thread call stack, connection without kprobes, chunked records) are
 * in kern/include/tls.h.
 *
 * Probes, on libssl.so or a binary linking OpenSSL statically:
 *
 *   uprobe SSL_write, SSL_write_ex             (text mode, sock tracepoints)
 *                                              egress: the num bytes of buf,
 *                                              at entry (openssl_write_at_entry)
 *   uprobe+uretprobe SSL_write, SSL_write_ex   (otherwise) egress: the bytes
 *   uprobe+uretprobe SSL_read,  SSL_read_ex    of buf the call reports it
 *                                              moved: ret > 0 for
 *                                              SSL_write/SSL_read, or *written
 *                                              or *readbytes when the _ex form
 *                                              returns 1
 *   uprobe+uretprobe SSL_do_handshake          a frame whose socket I/O ties
 *                                              the session to its socket; in
 *                                              the key modes, the session's
 *                                              secrets when it returns 1;
 *                                              SSL_connect and SSL_accept
 *                                              tail-call it
 *   uretprobe SSL_new                          (key modes) the session is
 *                                              pending until keyed
 *   uprobe SSL_write, SSL_read, _ex forms      (key modes, attached by user
 *                                              space only while sessions may
 *                                              be pending) the fallback: the
 *                                              secrets of a session not keyed
 *   uprobe SSL_set_fd, SSL_set_rfd, SSL_set_wfd   session -> fd
 *   uprobe SSL_free                               forget the session; in the key
 *                                                 modes, its secrets first if it
 *                                                 was never keyed
 *   raw tracepoints sock_send_length/sock_recv_length, or syscall
 *   tracepoints (tls.h)                           session -> socket
 *   classifier/egress, classifier/ingress         (pcap mode) TC (tcx or clsact)
 *                                                 programs copying packets
 *
 * SSL_peek is not probed: its bytes come again from SSL_read.
 *
 * Layouts. Where OpenSSL keeps a session's secrets depends on its version:
 * user space detects the version of each probed binary and sets one slot
 * of openssl_layouts per binary before load. The entry programs exist once
 * per slot (uprobe_ssl_write, uprobe_ssl_write_1, ...): each records its
 * slot in the call's frame (tls_frame.info), so the return programs, shared
 * by every slot, know which layout the session's SSL * has.
 *
 * Keys, at handshake cost. The secrets are read once per session, where
 * its handshake ends: at the return of SSL_do_handshake (1). A session
 * whose handshake ran inside SSL_write/SSL_read (OpenSSL calls its state
 * machine directly there, not SSL_do_handshake) or before ecaphost started
 * is keyed by a fallback: the entry probes uprobe_ssl_keys on SSL_write,
 * SSL_read and their _ex forms, which user space attaches only while such
 * sessions may exist (a window after start; while openssl_pending holds a
 * session that SSL_new made and no handshake call has keyed), and by
 * SSL_free, which keys a session never keyed before forgetting it. A
 * session is read only once its handshake is complete (TLS 1.3: the
 * exporter secret is set, which OpenSSL derives with the application
 * secrets; TLS <= 1.2: the session has its master key), with its slot's
 * layout, and sent as one struct openssl_keys_event on ecap_events: TLS
 * version, client_random, the session's master key (TLS <= 1.2), and the
 * TLS 1.3 secrets user space needs to derive the key log lines and to
 * check them before writing any. openssl_keyed remembers, per session,
 * the client_random sent: one record per handshake. A record the ring
 * buffer cannot take is counted in ecap_lost and retried at the session's
 * next probed call (SSL_free at the latest).
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
	OPENSSL_FN_SSL_DO_HANDSHAKE = 5, /* no data: never in a tls_data_event */
};

/*
 * What to capture, set by user space before load. Text mode (0): data,
 * from the probes on SSL_read/SSL_write; keylog and pcap modes (1): keys
 * only, and those probes are not attached (the fallback's are).
 */
const volatile __u32 openssl_capture_keys = 0;
/*
 * Text mode where the kernel has the sock tracepoints: writes are captured
 * by their entry probe alone (tls_write_at_entry), without a return probe
 * on SSL_write and SSL_write_ex. Otherwise a write's return probe sends
 * the bytes it reports written.
 */
const volatile __u32 openssl_write_at_entry = 0;

/* ---------------------------------------------------------------- keys */

/* ecap_hdr.kind of struct openssl_keys_event (tls_data_event is TLS_KIND_DATA). */
#define OPENSSL_KIND_KEYS 2
/* How many distinct binaries (each with its layout) the key modes probe. */
#define OPENSSL_MAX_LAYOUTS 4
/* OpenSSL's secrets are unsigned char[EVP_MAX_MD_SIZE]. */
#define OPENSSL_SECRET_LEN 64
/* The TLS <= 1.2 master secret. */
#define OPENSSL_MASTER_KEY_LEN 48

/*
 * struct openssl_layout: offsets in bytes into OpenSSL's structures, for
 * one version (plugins/openssl/opensslmod/offsets.go has the table). A
 * negative offset is a field the version lacks. No implicit padding; Go
 * twin opensslmod.layout.
 */
struct openssl_layout {
	__s32 valid;                     /* 0: slot unused */
	__s32 ssl_type;                  /* int ssl_st.type (3.2+: 0 = TLS connection); -1: none */
	__s32 version;                   /* int: negotiated protocol version */
	__s32 s3;                        /* 1.1.1: offset of the s3 pointer; -1: s3 embedded (3.x) */
	__s32 client_random;             /* in *s3 (1.1.1) or in SSL (3.x) */
	__s32 handshake_secret;          /* TLS 1.3 key schedule, unsigned char[64] each */
	__s32 handshake_traffic_hash;
	__s32 client_finished_secret;
	__s32 server_finished_hash;
	__s32 client_app_traffic_secret;
	__s32 server_app_traffic_secret;
	__s32 exporter_master_secret;
	__s32 session;                   /* SSL_SESSION *session */
	__s32 session_master_key_length; /* size_t, in SSL_SESSION */
	__s32 session_master_key;        /* unsigned char[] */
	__s32 session_cipher;            /* const SSL_CIPHER * */
	__s32 session_cipher_id;         /* unsigned long, when cipher is NULL */
	__s32 cipher_id;                 /* uint32_t, in SSL_CIPHER */
	__s32 cipher_algorithm2;         /* uint32_t: low byte 4 SHA256, 5 SHA384 */
	__s32 reserved;
};

const volatile struct openssl_layout openssl_layouts[OPENSSL_MAX_LAYOUTS] = {};

/* openssl_keys_event.hdr.flags */
enum openssl_keys_flags {
	OPENSSL_KEYS_F_NO_SESSION = 1 << 0, /* SSL's session pointer was NULL */
	OPENSSL_KEYS_F_NO_CIPHER = 1 << 1,  /* the session's cipher pointer was NULL: cipher_id only */
	OPENSSL_KEYS_F_FAULT = 1 << 2,      /* a read from the process failed: fields are zero */
};

/*
 * struct openssl_keys_event: the secrets of one session at the end of its
 * handshake. No implicit padding; Go twin opensslmod.keysRecord, checked
 * through the object's BTF.
 */
struct openssl_keys_event {
	struct ecap_hdr hdr;        /* kind OPENSSL_KIND_KEYS, len 0, flags: enum openssl_keys_flags */
	__u64 session;              /* SSL * */
	__u64 serial;               /* tls_session.serial: tells sessions at one address apart */
	__s32 version;              /* 0x0303 TLS 1.2, 0x0304 TLS 1.3... */
	__u32 layout;               /* slot of openssl_layouts used */
	__u64 master_key_length;    /* SSL_SESSION.master_key_length */
	__u32 cipher_id;            /* SSL_CIPHER.id, or SSL_SESSION.cipher_id */
	__u32 algorithm2;           /* SSL_CIPHER.algorithm2; 0 when unknown */
	__s32 fd;                   /* -1: unknown */
	__u16 family;               /* the connection, as in tls_data_event */
	__u16 lport;
	__u16 rport;
	__u16 reserved;
	__u32 reserved2;
	__u8 laddr[16];
	__u8 raddr[16];
	__u8 client_random[32];
	__u8 master_key[OPENSSL_MASTER_KEY_LEN];
	__u8 handshake_secret[OPENSSL_SECRET_LEN];
	__u8 handshake_traffic_hash[OPENSSL_SECRET_LEN];
	__u8 client_finished_secret[OPENSSL_SECRET_LEN];
	__u8 server_finished_hash[OPENSSL_SECRET_LEN];
	__u8 client_app_traffic_secret[OPENSSL_SECRET_LEN];
	__u8 server_app_traffic_secret[OPENSSL_SECRET_LEN];
	__u8 exporter_master_secret[OPENSSL_SECRET_LEN];
};

/* Keeps struct openssl_keys_event in the object's BTF, for the Go side's layout test. */
struct openssl_keys_event *openssl_keys_event_btf __attribute__((unused));

/* Indexes of the per-CPU counters openssl_stats. */
enum openssl_stat {
	OPENSSL_STAT_KEYS_UNSUPPORTED = 0, /* sessions whose SSL * is not a TLS connection (QUIC) */
	OPENSSL_STAT_KEYS_FAULT = 1,       /* sessions whose secrets could not be read */
	OPENSSL_STAT_PCAP_FAILED = 2,      /* packets the ring buffer could not take */
	OPENSSL_STAT_PCAP_TRUNCATED = 3,   /* packets longer than pcap_snaplen, cut */
	OPENSSL_STAT_KEYS_LATE = 4,        /* sessions keyed by the fallback probes on SSL_write/SSL_read */
	OPENSSL_STAT_KEYS_AT_FREE = 5,     /* sessions keyed at SSL_free */
	OPENSSL_STAT_FALLBACK_UNKEYED = 6, /* fallback calls on a session not keyed yet */
	OPENSSL_STAT_MAX = 7,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OPENSSL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} openssl_stats SEC(".maps");

static __always_inline void openssl_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&openssl_stats, &stat);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* (tgid, SSL *) -> the first 8 bytes of the client_random sent, xor the version. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_session_key);
	__type(value, __u64);
} openssl_keyed SEC(".maps");

/*
 * struct openssl_pending: a session SSL_new made while the key modes ran,
 * not keyed yet. No implicit padding; Go twin opensslmod.pendingSession.
 */
struct openssl_pending {
	__u64 created_ns;   /* bpf_ktime_get_ns() at SSL_new's return */
	__u64 handshake_ns; /* at its last SSL_do_handshake entry; 0: none yet */
};

/* Keeps struct openssl_pending in the object's BTF, for the Go side's layout test. */
struct openssl_pending *openssl_pending_btf __attribute__((unused));

/*
 * (tgid, SSL *) -> struct openssl_pending. User space reads it to attach
 * the fallback probes while a session may be keyed by nothing else, and
 * removes the sessions it gave up on.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tls_session_key);
	__type(value, struct openssl_pending);
} openssl_pending SEC(".maps");

/* openssl_read reads n bytes at user address addr into dst, flagging a failure. */
static __always_inline void openssl_read(void *dst, __u32 n, __u64 addr, __u32 *flags)
{
	if (bpf_probe_read_user(dst, n, (const void *)addr))
		*flags |= OPENSSL_KEYS_F_FAULT;
}

/* What openssl_keys did. */
enum openssl_keys_result {
	OPENSSL_KEYS_NOT_READY = 0, /* no client_random, handshake not complete, or no room: try again later */
	OPENSSL_KEYS_SENT = 1,      /* this call sent the record */
	OPENSSL_KEYS_DONE = 2,      /* sent before (openssl_keyed), or never readable: nothing more to do */
};

/*
 * openssl_keys sends the secrets of ssl, read with the layout of slot, once
 * per client_random, if its handshake is complete.
 */
static __always_inline int openssl_keys(__u64 ssl, __u32 slot)
{
	const volatile struct openssl_layout *l;
	struct tls_session_key key = {};
	struct openssl_keys_event *e;
	struct tls_session *s;
	__u64 cr = 0, s3 = 0, sess = 0, cipher = 0, mark = 0, done = 0, *seen;
	__s32 type = 0, version = 0;
	__u32 flags = 0;
	struct sock *sk;

	if (!ssl || slot >= OPENSSL_MAX_LAYOUTS)
		return OPENSSL_KEYS_DONE;
	l = &openssl_layouts[slot];
	if (!l->valid)
		return OPENSSL_KEYS_DONE;
	if (l->ssl_type >= 0) {
		if (bpf_probe_read_user(&type, sizeof(type), (const void *)(ssl + l->ssl_type)) || type != 0) {
			openssl_count(OPENSSL_STAT_KEYS_UNSUPPORTED);
			return OPENSSL_KEYS_DONE;
		}
	}
	if (bpf_probe_read_user(&version, sizeof(version), (const void *)(ssl + l->version)))
		goto fault;
	if (l->s3 >= 0) {
		if (bpf_probe_read_user(&s3, sizeof(s3), (const void *)(ssl + l->s3)) || !s3)
			goto fault;
		cr = s3 + l->client_random;
	} else {
		cr = ssl + l->client_random;
	}
	if (bpf_probe_read_user(&mark, sizeof(mark), (const void *)cr))
		goto fault;
	if (!mark)
		return OPENSSL_KEYS_NOT_READY; /* no client_random yet */
	mark ^= (__u64)(__u32)version;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.session = ssl;
	seen = bpf_map_lookup_elem(&openssl_keyed, &key);
	if (seen && *seen == mark)
		return OPENSSL_KEYS_DONE;
	/*
	 * Complete? TLS 1.3: OpenSSL derives the exporter secret with the
	 * application secrets, once the server's Finished is written or read.
	 * Older versions: the session has its master key.
	 */
	if (bpf_probe_read_user(&sess, sizeof(sess), (const void *)(ssl + l->session)))
		goto fault;
	if (version == 0x0304) {
		if (bpf_probe_read_user(&done, sizeof(done), (const void *)(ssl + l->exporter_master_secret)))
			goto fault;
	} else if (sess) {
		if (bpf_probe_read_user(&done, sizeof(done), (const void *)(sess + l->session_master_key_length)))
			goto fault;
	}
	if (!done)
		return OPENSSL_KEYS_NOT_READY;

	e = ecap_reserve(sizeof(*e));
	if (!e)
		return OPENSSL_KEYS_NOT_READY; /* counted; retried at the session's next probed call */
	ecap_fill_hdr(&e->hdr, OPENSSL_KIND_KEYS);
	e->session = ssl;
	e->serial = 0;
	e->version = version;
	e->layout = slot;
	e->master_key_length = 0;
	e->cipher_id = 0;
	e->algorithm2 = 0;
	e->fd = -1;
	e->family = 0;
	e->lport = 0;
	e->rport = 0;
	e->reserved = 0;
	e->reserved2 = 0;
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	__builtin_memset(e->master_key, 0, sizeof(e->master_key));

	s = tls_session_get(ssl);
	if (s) {
		e->serial = s->serial;
		e->fd = s->fd;
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

	openssl_read(e->client_random, sizeof(e->client_random), cr, &flags);
	if (sess) {
		openssl_read(&e->master_key_length, sizeof(e->master_key_length), sess + l->session_master_key_length, &flags);
		if (version != 0x0304)
			openssl_read(e->master_key, sizeof(e->master_key), sess + l->session_master_key, &flags);
		if (bpf_probe_read_user(&cipher, sizeof(cipher), (const void *)(sess + l->session_cipher)))
			flags |= OPENSSL_KEYS_F_FAULT;
		if (cipher) {
			openssl_read(&e->cipher_id, sizeof(e->cipher_id), cipher + l->cipher_id, &flags);
			openssl_read(&e->algorithm2, sizeof(e->algorithm2), cipher + l->cipher_algorithm2, &flags);
		} else {
			flags |= OPENSSL_KEYS_F_NO_CIPHER;
			openssl_read(&e->cipher_id, sizeof(e->cipher_id), sess + l->session_cipher_id, &flags);
		}
	} else {
		flags |= OPENSSL_KEYS_F_NO_SESSION;
	}
	if (version == 0x0304) {
		openssl_read(e->handshake_secret, OPENSSL_SECRET_LEN, ssl + l->handshake_secret, &flags);
		openssl_read(e->handshake_traffic_hash, OPENSSL_SECRET_LEN, ssl + l->handshake_traffic_hash, &flags);
		openssl_read(e->client_finished_secret, OPENSSL_SECRET_LEN, ssl + l->client_finished_secret, &flags);
		openssl_read(e->server_finished_hash, OPENSSL_SECRET_LEN, ssl + l->server_finished_hash, &flags);
		openssl_read(e->client_app_traffic_secret, OPENSSL_SECRET_LEN, ssl + l->client_app_traffic_secret, &flags);
		openssl_read(e->server_app_traffic_secret, OPENSSL_SECRET_LEN, ssl + l->server_app_traffic_secret, &flags);
		openssl_read(e->exporter_master_secret, OPENSSL_SECRET_LEN, ssl + l->exporter_master_secret, &flags);
	} else {
		__builtin_memset(e->handshake_secret, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->handshake_traffic_hash, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->client_finished_secret, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->server_finished_hash, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->client_app_traffic_secret, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->server_app_traffic_secret, 0, OPENSSL_SECRET_LEN);
		__builtin_memset(e->exporter_master_secret, 0, OPENSSL_SECRET_LEN);
	}
	e->hdr.flags = flags;
	bpf_ringbuf_submit(e, 0);
	if (flags & OPENSSL_KEYS_F_FAULT) {
		openssl_count(OPENSSL_STAT_KEYS_FAULT);
		return OPENSSL_KEYS_DONE;
	}
	bpf_map_update_elem(&openssl_keyed, &key, &mark, BPF_ANY);
	bpf_map_delete_elem(&openssl_pending, &key);
	return OPENSSL_KEYS_SENT;
fault:
	openssl_count(OPENSSL_STAT_KEYS_FAULT);
	return OPENSSL_KEYS_DONE;
}

/* ------------------------------------------------------------ plaintext */

/*
 * OPENSSL_ENTRY_PROGS(sfx, slot) defines the entry programs of one layout
 * slot: uprobe_ssl_write##sfx... Slot 0 has the plain names.
 */
#define OPENSSL_ENTRY_PROGS(sfx, slot)                                                                          \
	/* int SSL_write(SSL *ssl, const void *buf, int num) */                                                    \
	SEC("uprobe/SSL_write")                                                                                    \
	int BPF_UPROBE(uprobe_ssl_write##sfx, void *ssl, const void *buf, int num)                                  \
	{                                                                                                          \
		if (openssl_write_at_entry && num > 0)                                                             \
			tls_write_at_entry(ctx, (__u64)ssl, (__u64)buf, (__u64)num, OPENSSL_FN_SSL_WRITE, slot);   \
		else if (!openssl_write_at_entry)                                                                  \
			tls_enter_info(ctx, (__u64)ssl, (__u64)buf, 0, OPENSSL_FN_SSL_WRITE, TLS_DIR_EGRESS, slot); \
		return 0;                                                                                          \
	}                                                                                                          \
	/* int SSL_read(SSL *ssl, void *buf, int num) */                                                           \
	SEC("uprobe/SSL_read")                                                                                     \
	int BPF_UPROBE(uprobe_ssl_read##sfx, void *ssl, void *buf)                                                  \
	{                                                                                                          \
		tls_enter_info(ctx, (__u64)ssl, (__u64)buf, 0, OPENSSL_FN_SSL_READ, TLS_DIR_INGRESS, slot);         \
		return 0;                                                                                          \
	}                                                                                                          \
	/* int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) */                               \
	SEC("uprobe/SSL_write_ex")                                                                                 \
	int BPF_UPROBE(uprobe_ssl_write_ex##sfx, void *ssl, const void *buf, __u64 num, __u64 *written)             \
	{                                                                                                          \
		if (openssl_write_at_entry)                                                                        \
			tls_write_at_entry(ctx, (__u64)ssl, (__u64)buf, num, OPENSSL_FN_SSL_WRITE_EX, slot);       \
		else                                                                                               \
			tls_enter_info(ctx, (__u64)ssl, (__u64)buf, (__u64)written, OPENSSL_FN_SSL_WRITE_EX,       \
				       TLS_DIR_EGRESS, slot);                                                      \
		return 0;                                                                                          \
	}                                                                                                          \
	/* int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) */                                  \
	SEC("uprobe/SSL_read_ex")                                                                                  \
	int BPF_UPROBE(uprobe_ssl_read_ex##sfx, void *ssl, void *buf, __u64 num, __u64 *readbytes)                  \
	{                                                                                                          \
		tls_enter_info(ctx, (__u64)ssl, (__u64)buf, (__u64)readbytes, OPENSSL_FN_SSL_READ_EX,               \
			       TLS_DIR_INGRESS, slot);                                                             \
		return 0;                                                                                          \
	}                                                                                                          \
	/* int SSL_do_handshake(SSL *s): a frame without data, so that the                                       \
	 * handshake's socket I/O ties the session to its socket. */                                             \
	SEC("uprobe/SSL_do_handshake")                                                                             \
	int BPF_UPROBE(uprobe_ssl_do_handshake##sfx, void *ssl)                                                     \
	{                                                                                                          \
		tls_enter_info(ctx, (__u64)ssl, 0, 0, OPENSSL_FN_SSL_DO_HANDSHAKE, TLS_DIR_EGRESS, slot);           \
		if (openssl_capture_keys)                                                                          \
			openssl_handshake_entered((__u64)ssl);                                                     \
		return 0;                                                                                          \
	}                                                                                                          \
	/* The key modes' fallback, on the entry of SSL_write, SSL_read and                                      \
	 * their _ex forms (the session is the first argument of each),                                           \
	 * attached by user space while a session may be keyed by nothing else. */                                \
	SEC("uprobe/SSL_write")                                                                                    \
	int BPF_UPROBE(uprobe_ssl_keys##sfx, void *ssl)                                                             \
	{                                                                                                          \
		if (openssl_capture_keys && !ecap_filtered())                                                      \
			openssl_fallback((__u64)ssl, slot);                                                        \
		return 0;                                                                                          \
	}                                                                                                          \
	/* void SSL_free(SSL *ssl): in the key modes, the secrets of a session                                    \
	 * never keyed (its handshake was not seen), then forget it. */                                          \
	SEC("uprobe/SSL_free")                                                                                     \
	int BPF_UPROBE(uprobe_ssl_free##sfx, void *ssl)                                                             \
	{                                                                                                          \
		openssl_free(ctx, (__u64)ssl, slot);                                                               \
		return 0;                                                                                          \
	}

/* openssl_handshake_entered notes that a pending session entered SSL_do_handshake. */
static __always_inline void openssl_handshake_entered(__u64 ssl)
{
	struct tls_session_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = ssl};
	struct openssl_pending *p = bpf_map_lookup_elem(&openssl_pending, &key);

	if (p)
		p->handshake_ns = bpf_ktime_get_ns();
}

/* openssl_fallback is the key modes' fallback probe on a data call of ssl. */
static __always_inline void openssl_fallback(__u64 ssl, __u32 slot)
{
	switch (openssl_keys(ssl, slot)) {
	case OPENSSL_KEYS_SENT:
		openssl_count(OPENSSL_STAT_KEYS_LATE);
		break;
	case OPENSSL_KEYS_NOT_READY:
		openssl_count(OPENSSL_STAT_FALLBACK_UNKEYED);
		break;
	}
}

/* openssl_free forgets ssl, in the key modes after sending its secrets if it was never keyed. */
static __always_inline void openssl_free(struct pt_regs *ctx, __u64 ssl, __u32 slot)
{
	struct tls_session_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = ssl};

	if (!ssl)
		return;
	if (openssl_capture_keys) {
		if (!ecap_filtered() && openssl_keys(ssl, slot) == OPENSSL_KEYS_SENT)
			openssl_count(OPENSSL_STAT_KEYS_AT_FREE);
		bpf_map_delete_elem(&openssl_keyed, &key);
		bpf_map_delete_elem(&openssl_pending, &key);
	}
	tls_session_free(ssl);
}

OPENSSL_ENTRY_PROGS(, 0)
OPENSSL_ENTRY_PROGS(_1, 1)
OPENSSL_ENTRY_PROGS(_2, 2)
OPENSSL_ENTRY_PROGS(_3, 3)

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

/* Return of SSL_do_handshake (and of SSL_connect, SSL_accept): 1 when done. */
SEC("uretprobe/SSL_do_handshake")
int BPF_URETPROBE(uretprobe_ssl_do_handshake)
{
	int ret = (int)PT_REGS_RC(ctx);
	struct tls_frame f;

	if (!tls_leave(ctx, &f) || ret != 1)
		return 0;
	if (openssl_capture_keys)
		openssl_keys(f.session, f.info);
	return 0;
}

/* SSL *SSL_new(SSL_CTX *ctx), in the key modes: the new session is pending until keyed. */
SEC("uretprobe/SSL_new")
int BPF_URETPROBE(uretprobe_ssl_new)
{
	struct tls_session_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = PT_REGS_RC(ctx)};
	struct openssl_pending p = {.created_ns = bpf_ktime_get_ns()};

	if (!key.session || ecap_filtered())
		return 0;
	bpf_map_update_elem(&openssl_pending, &key, &p, BPF_ANY);
	return 0;
}

/* int SSL_set_fd(SSL *s, int fd), and SSL_set_rfd, SSL_set_wfd: one program. */
SEC("uprobe/SSL_set_fd")
int BPF_UPROBE(uprobe_ssl_set_fd, void *ssl, int fd)
{
	tls_set_fd((__u64)ssl, fd);
	return 0;
}

/* ----------------------------------------------------------------- pcap */

#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif
#define OPENSSL_ETH_P_IP 0x0800
#define OPENSSL_ETH_P_IPV6 0x86DD
#define OPENSSL_IPPROTO_TCP 6
#define OPENSSL_IPPROTO_UDP 17

/* Filters of pcap mode, set before load; 0 / family 0: none. */
const volatile __u16 pcap_port = 0;            /* source or destination TCP/UDP port */
const volatile __u16 pcap_host_family = 0;     /* AF_INET, AF_INET6, 0: no host filter */
const volatile __u8 pcap_host[16] = {};        /* source or destination address (4 bytes for AF_INET) */
const volatile __u32 pcap_l2_len = 14;         /* bytes before the network header: 14 Ethernet, 0 raw IP */
const volatile __u32 pcap_snaplen = 262144;    /* most bytes of a packet sent */

/*
 * A packet is one record of the pcap_events ring buffer: struct pcap_meta
 * and the packet's first captured bytes, copied once, straight from the
 * skb into the reserved record (no scratch buffer, no perf record's 64 KiB
 * limit, so a loopback GSO packet is one record). bpf_ringbuf_reserve
 * needs a size known at load, so a packet goes in the smallest of a few
 * size classes that holds it: the record is that long, user space reads
 * meta.captured bytes of it. The classes keep the ring's waste under half
 * of a record, and 17 KiB holds a full TLS record (16 KiB of data, its
 * overhead and the TCP/IP headers), the segment a TLS server sends most.
 * One ring for every CPU keeps the packets in the order they were queued,
 * and its memory does not grow with the number of CPUs.
 */
#define PCAP_MAX_RECORD 262144

/* struct pcap_meta starts each record of pcap_events. No implicit padding; Go twin opensslmod.pcapMeta. */
struct pcap_meta {
	__u64 timestamp_ns; /* bpf_ktime_get_ns() */
	__u32 len;          /* skb->len: the packet's length (a GSO packet: all its segments) */
	__u32 captured;     /* bytes of the packet after this struct */
	__u32 ifindex;
	__u32 dir; /* TLS_DIR_EGRESS, TLS_DIR_INGRESS */
};

/* Puts struct pcap_meta in the object's BTF, where the layout test reads it. */
struct pcap_meta *pcap_meta_btf __attribute__((unused));

/* One page here, unused outside pcap mode; pcap mode sizes it (buffer_kib, 16 MiB by default). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} pcap_events SEC(".maps");

/*
 * PCAP_BOUND makes v (a register) 1 to max for the verifier, whatever
 * the compiler made of earlier checks on copies of it.
 */
#define PCAP_BOUND(v, max)                                         \
	asm volatile("if %0 <= %1 goto +1; %0 = %1; if %0 > 0 goto +1; %0 = 1" \
		     : "+r"(v)                                      \
		     : "i"(max))

/* pcap_match_addr reports whether the 4 or 16 bytes at off of skb are pcap_host. */
static __always_inline bool pcap_match_addr(struct __sk_buff *skb, __u32 off, __u32 n)
{
	__u8 a[16] = {};

	if (n == 4) {
		if (bpf_skb_load_bytes(skb, off, a, 4))
			return false;
	} else if (bpf_skb_load_bytes(skb, off, a, 16)) {
		return false;
	}
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i < n && a[i] != pcap_host[i])
			return false;
	}
	return true;
}

/* pcap_wanted applies the port and host filters to the packet. */
static __always_inline bool pcap_wanted(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol), ports[2] = {};
	__u32 l3 = pcap_l2_len, l4 = 0;
	__u8 b = 0, next = 0;
	bool host_ok = pcap_host_family == 0;

	if (!pcap_port && !pcap_host_family)
		return true;
	if (proto == OPENSSL_ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, l3, &b, 1))
			return false;
		l4 = l3 + (b & 0xf) * 4;
		if (bpf_skb_load_bytes(skb, l3 + 9, &next, 1))
			return false;
		if (pcap_host_family == AF_INET)
			host_ok = pcap_match_addr(skb, l3 + 12, 4) || pcap_match_addr(skb, l3 + 16, 4);
	} else if (proto == OPENSSL_ETH_P_IPV6) {
		l4 = l3 + 40;
		if (bpf_skb_load_bytes(skb, l3 + 6, &next, 1))
			return false;
		if (pcap_host_family == AF_INET6)
			host_ok = pcap_match_addr(skb, l3 + 8, 16) || pcap_match_addr(skb, l3 + 24, 16);
	} else {
		return false;
	}
	if (!host_ok)
		return false;
	if (!pcap_port)
		return true;
	if (next != OPENSSL_IPPROTO_TCP && next != OPENSSL_IPPROTO_UDP)
		return false;
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return false;
	return bpf_ntohs(ports[0]) == pcap_port || bpf_ntohs(ports[1]) == pcap_port;
}

/*
 * pcap_wakeup is the flag of a record of len bytes: wake the reader only
 * once ecap_wakeup_bytes wait (user space polls in between), as
 * ecap_output does for ecap_events.
 */
static __always_inline __u64 pcap_wakeup(__u64 len)
{
	if (!ecap_wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&pcap_events, BPF_RB_AVAIL_DATA) + len >= ecap_wakeup_bytes ? BPF_RB_FORCE_WAKEUP :
													  BPF_RB_NO_WAKEUP;
}

/*
 * PCAP_CLASS queues the packet in a record of SIZE bytes of data when n
 * (its bytes to copy, at least 1) fits, and returns.
 */
#define PCAP_CLASS(SIZE)                                                                  \
	if (n <= (SIZE)) {                                                                \
		struct {                                                                  \
			struct pcap_meta meta;                                            \
			__u8 data[(SIZE)];                                                \
		} *r = bpf_ringbuf_reserve(&pcap_events, sizeof(*r), 0);                 \
		if (!r) {                                                                 \
			openssl_count(OPENSSL_STAT_PCAP_FAILED);                          \
			return TC_ACT_UNSPEC;                                             \
		}                                                                         \
		r->meta = meta;                                                           \
		PCAP_BOUND(n, (SIZE));                                                    \
		if (bpf_skb_load_bytes(skb, 0, r->data, n)) {                             \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);                         \
			openssl_count(OPENSSL_STAT_PCAP_FAILED);                          \
			return TC_ACT_UNSPEC;                                             \
		}                                                                         \
		bpf_ringbuf_submit(r, pcap_wakeup(sizeof(*r)));                           \
		return TC_ACT_UNSPEC;                                                     \
	}

static __always_inline int pcap_packet(struct __sk_buff *skb, __u32 dir)
{
	struct pcap_meta meta = {};
	__u64 n = skb->len;

	if (!pcap_wanted(skb))
		return TC_ACT_UNSPEC;
	if (n > pcap_snaplen || n > PCAP_MAX_RECORD) {
		n = pcap_snaplen < PCAP_MAX_RECORD ? pcap_snaplen : PCAP_MAX_RECORD;
		openssl_count(OPENSSL_STAT_PCAP_TRUNCATED);
	}
	if (n == 0)
		return TC_ACT_UNSPEC;
	meta.timestamp_ns = bpf_ktime_get_ns();
	meta.len = skb->len;
	meta.captured = n;
	meta.ifindex = skb->ifindex;
	meta.dir = dir;
	PCAP_CLASS(256)
	PCAP_CLASS(1024)
	PCAP_CLASS(4096)
	PCAP_CLASS(17408)
	PCAP_CLASS(32768)
	PCAP_CLASS(66560)
	PCAP_CLASS(131072)
	PCAP_CLASS(PCAP_MAX_RECORD)
	return TC_ACT_UNSPEC;
}

SEC("classifier/egress")
int tc_egress(struct __sk_buff *skb)
{
	return pcap_packet(skb, TLS_DIR_EGRESS);
}

SEC("classifier/ingress")
int tc_ingress(struct __sk_buff *skb)
{
	return pcap_packet(skb, TLS_DIR_INGRESS);
}
