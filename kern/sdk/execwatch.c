/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * execwatch.c - tells user space about every exec on the node, for the
 * node-wide discovery of files to probe (sdk/ebpfbase/discover). One
 * raw tracepoint, sched_process_exec, which fires once the new image is
 * mapped and before it runs, and a uprobe on the dynamic loader's
 * _dl_debug_state, which reports libraries opened later (dlopen); a
 * record is 24 bytes. A raw tracepoint, not a perf-event one: the kernel
 * detaches that under its global event_mutex after a grace period (0.25 s
 * of a module's stop at load 30). Not a capture module: the SDK embeds
 * this object (sdk/ebpfbase/discover/bpf) and loads it beside a module's
 * own.
 */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#pragma clang diagnostic pop

#include <bpf/bpf_helpers.h>

/* struct exec_event is one exec, or one change of a process's libraries.
 * Go twin: discover.execRecord. */
struct exec_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns() at the exec */
	__u64 cgroup_id;    /* the task's cgroup v2 id */
	__u32 pid;          /* thread group id */
	__u32 kind;         /* EXEC_KIND_* */
};

#define EXEC_KIND_EXEC 0
#define EXEC_KIND_DLOPEN 1

/*
 * Filter, set by user space before load: only execs in the cgroup
 * target_cgroup_id (at depth target_cgroup_level) or below it; 0: all.
 */
const volatile __u64 target_cgroup_id = 0;
const volatile __u32 target_cgroup_level = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} exec_events SEC(".maps");

/* exec_lost counts execs the ring buffer had no room for: user space then
 * scans every process again. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} exec_lost SEC(".maps");

/*
 * dlopen_last holds, per process, when its last library change was
 * reported: one report per DLOPEN_GAP_NS and process at most (user space
 * reads the process's mappings again over the next 50 ms, which covers
 * the changes not reported meanwhile).
 */
#define DLOPEN_GAP_NS (10 * 1000 * 1000ULL)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} dlopen_last SEC(".maps");

static __always_inline int report(__u32 kind)
{
	struct exec_event *e;
	__u32 zero = 0;
	__u64 *n, now;
	__u32 pid;

	if (target_cgroup_id &&
	    bpf_get_current_ancestor_cgroup_id((int)target_cgroup_level) != target_cgroup_id)
		return 0;
	now = bpf_ktime_get_ns();
	pid = bpf_get_current_pid_tgid() >> 32;
	if (kind == EXEC_KIND_DLOPEN) {
		__u64 *last = bpf_map_lookup_elem(&dlopen_last, &pid);

		if (last && now - *last < DLOPEN_GAP_NS)
			return 0;
		bpf_map_update_elem(&dlopen_last, &pid, &now, BPF_ANY);
	}
	e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		n = bpf_map_lookup_elem(&exec_lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	e->timestamp_ns = now;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = pid;
	e->kind = kind;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("raw_tracepoint/sched_process_exec")
int rtp_sched_process_exec(void *ctx)
{
	return report(EXEC_KIND_EXEC);
}

/*
 * The dynamic loader calls _dl_debug_state (glibc's and musl's r_brk, the
 * hook debuggers break on) after each dlopen or dlclose has changed the
 * process's libraries: a uprobe there reports a library opened long after
 * the exec, at no cost to the node's system calls. Loaded twice: as a
 * uprobe_multi program (kernel 6.6+: one cheap link per loader file) and
 * as a perf-event uprobe for older kernels.
 */
SEC("uprobe.multi/_dl_debug_state")
int uprobe_multi_dl_debug_state(void *ctx)
{
	return report(EXEC_KIND_DLOPEN);
}

SEC("uprobe/_dl_debug_state")
int uprobe_dl_debug_state(void *ctx)
{
	return report(EXEC_KIND_DLOPEN);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
