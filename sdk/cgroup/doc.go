// Package cgroup turns the cgroup v2 id the kernel side of a module puts
// on every record (struct ecap_hdr.cgroup_id, bpf_get_current_cgroup_id)
// into what an operator asks about: the cgroup's path and, when the path
// is one a container runtime or the kubelet creates, the container's id,
// its runtime, and its pod's uid and QoS class.
//
// Mount finds the unified (v2) hierarchy in /proc/mounts (/sys/fs/cgroup
// on a pure v2 machine, /sys/fs/cgroup/unified on a hybrid one). A
// Resolver maps ids to paths by file handle (open_by_handle_at, as the
// kernel exports cgroup ids as kernfs file handles) and caches them; Parse
// holds the one table of path layouts; Find lists the cgroups whose
// container id starts with a prefix, for the container filter.
package cgroup
