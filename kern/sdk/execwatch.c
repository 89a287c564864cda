/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * execwatch.c - tells user space about every exec on the node, for the
 * node-wide discovery of files to probe (sdk/ebpfbase/discover). One
 * tracepoint, sched/sched_process_exec, which fires once the new image is
 * mapped and before it runs; a record is 24 bytes. Not a capture module:
 * the SDK embeds this object (sdk/ebpfbase/discover/bpf) and loads it
 * beside a module's own.
 */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#pragma clang diagnostic pop

#include <bpf/bpf_helpers.h>

/* struct exec_event is one exec. Go twin: discover.execRecord. */
struct exec_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns() at the exec */
	__u64 cgroup_id;    /* the task's cgroup v2 id */
	__u32 pid;          /* thread group id */
	__u32 pad;
};

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

SEC("tracepoint/sched/sched_process_exec")
int tp_sched_process_exec(void *ctx)
{
	struct exec_event *e;
	__u32 zero = 0;
	__u64 *n;

	if (target_cgroup_id &&
	    bpf_get_current_ancestor_cgroup_id((int)target_cgroup_level) != target_cgroup_id)
		return 0;
	e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		n = bpf_map_lookup_elem(&exec_lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
