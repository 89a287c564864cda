// Package container builds test containers the way a container runtime
// does, without one (runtimes refuse some machines' cgroup setups): a
// root file system directory holding its own copies of the programs and
// of every library they load (other files, other inodes than the host's),
// entered with unshare (new mount and pid namespaces, /proc mounted
// inside) and chroot, its processes in a cgroup v2 directory named as the
// kubelet and containerd name a pod's container:
//
//	kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<64 hex>.scope
//
// under the cgroup2 mount found in /proc/mounts. Any module's end-to-end
// tests can use it; it needs root and unshare(1).
package container
