/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ecap.h - what every ecaphost capture module shares on the kernel side.
 *
 * The Go half of this file is sdk/ebpfbase: it sets the filter constants
 * below before the object is loaded, reads ECAP_EVENTS_MAP, and reports the
 * per-CPU counter ECAP_LOST_MAP as the loss counter "ringbuf_reserve_failed".
 *
 * Build modes (chosen by the module's compile flags, see kern/bpf.mk):
 *
 *   default          CO-RE: types from vmlinux.h, events on a BPF ring
 *                    buffer (Linux >= 5.8 with BTF).
 *   -DECAP_NONCORE   no vmlinux.h, no CO-RE relocation: uapi headers only,
 *                    events on a perf event array (kernels without BTF or
 *                    ring buffers). A module built this way must not read
 *                    kernel structs.
 *
 * A module includes this header once, from its single .c file: it defines
 * the maps and globals below.
 */
#ifndef ECAP_H
#define ECAP_H

#ifdef ECAP_NONCORE
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#ifndef ECAP_PERF_OUTPUT
#define ECAP_PERF_OUTPUT 1
#endif
#else
/* vmlinux.h is kernel layout, padded as the kernel pads it. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#pragma clang diagnostic pop
#endif

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* libbpf < 1.2 lacks the uprobe spellings; they are the kprobe macros. */
#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

#define ECAP_COMM_LEN 16

/*
 * struct ecap_hdr starts every record a module sends to user space. It has
 * no implicit padding (the build uses -Wpadded) and its Go twin is
 * ebpfbase.Header; a test of each module compares both layouts through the
 * object's BTF.
 */
struct ecap_hdr {
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pid;          /* thread group id, what ps calls PID */
	__u32 tid;          /* thread id */
	__u32 uid;
	__u32 kind;         /* module-defined record kind */
	__u32 len;          /* bytes of variable data after the fixed fields */
	__u32 flags;        /* module-defined */
	char comm[ECAP_COMM_LEN];
	__u64 cgroup_id;    /* bpf_get_current_cgroup_id(): the task's cgroup v2 id */
};

/*
 * Filters, set by user space before load (settings pid, uid, comm, and
 * cgroup or container); zero means "no filter". const volatile keeps them
 * in .rodata, so the verifier sees their values and prunes the dead
 * branches. target_cgroup_id is the cgroup v2 id of a cgroup at depth
 * target_cgroup_level below the root: a task passes when that cgroup is
 * its own or one of its ancestors.
 */
const volatile __u32 target_pid = 0;
const volatile __u32 target_uid = 0;
const volatile char target_comm[ECAP_COMM_LEN] = {};
const volatile __u64 target_cgroup_id = 0;
const volatile __u32 target_cgroup_level = 0;

/* ecap_filtered reports whether the current task must be ignored. */
static __always_inline bool ecap_filtered(void)
{
	if (target_pid) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (tgid != target_pid)
			return true;
	}
	if (target_uid) {
		__u32 uid = (__u32)bpf_get_current_uid_gid();
		if (uid != target_uid)
			return true;
	}
	if (target_cgroup_id &&
	    bpf_get_current_ancestor_cgroup_id((int)target_cgroup_level) != target_cgroup_id)
		return true;
	if (target_comm[0]) {
		char comm[ECAP_COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
		for (int i = 0; i < ECAP_COMM_LEN; i++) {
			if (comm[i] != target_comm[i])
				return true;
			if (comm[i] == 0)
				break;
		}
	}
	return false;
}

/*
 * ecap_fill_hdr fills h for the current task, with len 0 and flags 0. The
 * cgroup id is the task's in the unified (v2) hierarchy, whatever the
 * v1 controllers: user space turns it into a path and a container.
 */
static __always_inline void ecap_fill_hdr(struct ecap_hdr *h, __u32 kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->timestamp_ns = bpf_ktime_get_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->kind = kind;
	h->len = 0;
	h->flags = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->cgroup_id = bpf_get_current_cgroup_id();
}

/*
 * ecap_lost counts, per CPU, the records that could not be queued: a
 * failed bpf_ringbuf_reserve or bpf_ringbuf_output (ring full), or a failed
 * bpf_perf_event_output in the perf build. User space sums the CPUs.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ecap_lost SEC(".maps");

static __always_inline void ecap_count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&ecap_lost, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

#ifndef ECAP_RINGBUF_SIZE
/* Default size; user space resizes it from the buffer_kib setting. */
#define ECAP_RINGBUF_SIZE (256 * 1024)
#endif

/*
 * ecap_wakeup_bytes batches the reader's wake-ups: a record is queued
 * without waking the reader until this many bytes wait in the ring buffer
 * (user space also polls every few milliseconds, so a quiet ring is read
 * all the same). 0 wakes the reader for every record. Set by user space
 * before load (sdk/ebpfbase); a wake-up per record costs the reader an
 * epoll round trip each, which dominates its CPU under load.
 */
const volatile __u64 ecap_wakeup_bytes = 0;

#ifdef ECAP_PERF_OUTPUT
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} ecap_events SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ECAP_RINGBUF_SIZE);
} ecap_events SEC(".maps");
#endif

/*
 * ecap_output copies len bytes of buf into a record of ecap_events and
 * counts a failure in ecap_lost. buf is usually a per-CPU scratch value
 * (see ECAP_SCRATCH) holding a header and up to a fixed maximum of data;
 * len is what is actually used, so records have a variable length. The
 * caller must bound len by the size of buf in a way the verifier can see
 * (e.g. len &= MAX - 1 for a power-of-two MAX). ctx is the program's
 * context, needed by bpf_perf_event_output in the perf build.
 */
static __always_inline long ecap_output(void *ctx, const void *buf, __u64 len)
{
	long err;

#ifdef ECAP_PERF_OUTPUT
	err = bpf_perf_event_output(ctx, &ecap_events, BPF_F_CURRENT_CPU, (void *)buf, len);
#else
	__u64 flags = 0;

	if (ecap_wakeup_bytes)
		flags = bpf_ringbuf_query(&ecap_events, BPF_RB_AVAIL_DATA) + len >= ecap_wakeup_bytes ?
				BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	err = bpf_ringbuf_output(&ecap_events, (void *)buf, len, flags);
#endif
	if (err)
		ecap_count_lost();
	return err;
}

#ifndef ECAP_PERF_OUTPUT
/*
 * ecap_reserve reserves a fixed-size record on the ring buffer, counting a
 * failure. size must be a compile-time constant; submit the record with
 * bpf_ringbuf_submit or drop it with bpf_ringbuf_discard. Only in the ring
 * buffer build: portable modules use a scratch buffer and ecap_output.
 */
static __always_inline void *ecap_reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&ecap_events, size, 0);

	if (!rec)
		ecap_count_lost();
	return rec;
}
#endif

/*
 * ECAP_SCRATCH(name, value_type) declares a one-entry per-CPU array used as
 * scratch space for a record too large for the 512-byte BPF stack;
 * ecap_scratch(&name) returns the current CPU's value, or NULL.
 */
#define ECAP_SCRATCH(name, value_type)                   \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, 1);                  \
		__type(key, __u32);                      \
		__type(value, value_type);               \
	} name SEC(".maps")

static __always_inline void *ecap_scratch(void *map)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

#endif /* ECAP_H */
