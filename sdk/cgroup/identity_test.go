package cgroup

import "testing"

const (
	idA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid = "1c7a3e5f-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
	usc = "1c7a3e5f_2b4d_4e6f_8a9b_0c1d2e3f4a5b"
)

// TestParse has a case per layout of containerRules and podRules, and the
// paths that must not be taken for containers.
func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name string
		path string
		want Identity
	}{
		{"docker systemd", "/system.slice/docker-" + idA + ".scope",
			Identity{ContainerID: idA, Runtime: RuntimeDocker}},
		{"docker cgroupfs", "/docker/" + idA,
			Identity{ContainerID: idA, Runtime: RuntimeDocker}},
		{"containerd cri systemd in kubepods besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + usc + ".slice/cri-containerd-" + idA + ".scope",
			Identity{ContainerID: idA, Runtime: RuntimeContainerd, PodUID: uid, QoS: QoSBestEffort}},
		{"cri-o systemd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + usc + ".slice/crio-" + idA + ".scope",
			Identity{ContainerID: idA, Runtime: RuntimeCRIO, PodUID: uid, QoS: QoSBurstable}},
		{"guaranteed pod systemd", "/kubepods.slice/kubepods-pod" + usc + ".slice/cri-containerd-" + idA + ".scope",
			Identity{ContainerID: idA, Runtime: RuntimeContainerd, PodUID: uid, QoS: QoSGuaranteed}},
		{"kubelet cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + idA,
			Identity{ContainerID: idA, PodUID: uid, QoS: QoSBurstable}},
		{"kubelet cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + idA,
			Identity{ContainerID: idA, PodUID: uid, QoS: QoSGuaranteed}},
		{"pod slice without container", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + usc + ".slice",
			Identity{PodUID: uid, QoS: QoSBestEffort}},
		{"podman systemd", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + idA + ".scope",
			Identity{ContainerID: idA, Runtime: RuntimePodman}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + idA,
			Identity{ContainerID: idA, Runtime: RuntimePodman}},
		{"podman conmon is not the container", "/machine.slice/libpod-conmon-" + idA + ".scope", Identity{}},
		{"cri-o conmon is not the container", "/kubepods.slice/crio-conmon-" + idA + ".scope", Identity{}},
		{"nested: docker in a pod, innermost wins",
			"/kubepods.slice/kubepods-pod" + usc + ".slice/cri-containerd-" + idA + ".scope/docker/" + idA[:63] + "f",
			Identity{ContainerID: idA[:63] + "f", Runtime: RuntimeDocker, PodUID: uid, QoS: QoSGuaranteed}},
		{"systemd session scope", "/user.slice/user-0.slice/session-3.scope", Identity{}},
		{"systemd service", "/system.slice/nginx.service", Identity{}},
		{"bare id outside kubepods", "/" + idA, Identity{}},
		{"root", "/", Identity{}},
		{"upper-case hex is no id", "/system.slice/docker-" + "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef.scope", Identity{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Path = tt.path
			if got := Parse(tt.path); got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.path, got, tt.want)
			}
		})
	}
}
