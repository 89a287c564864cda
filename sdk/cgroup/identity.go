package cgroup

import (
	"regexp"
	"strings"
)

// Identity is a cgroup and the container and pod its path names. Only ID
// is always set: a cgroup removed before it could be looked up has no
// Path, and a path that is not a container's has no ContainerID.
type Identity struct {
	ID   uint64 // cgroup v2 id: the inode number of its directory
	Path string // below the cgroup2 mount, starting with "/"
	// ContainerID is the container's id, 64 hex digits.
	ContainerID string
	// Runtime is the runtime that made the container, when the path says:
	// "docker", "containerd", "cri-o", "podman".
	Runtime string
	// PodUID and QoS are set under Kubernetes' kubepods hierarchy: the
	// pod's uid (with dashes) and its QoS class, "guaranteed",
	// "burstable" or "besteffort".
	PodUID string
	QoS    string
}

// Runtimes as Identity.Runtime names them.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// QoS classes of Kubernetes pods as Identity.QoS names them.
const (
	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)

// containerRule recognises one path element of a container's cgroup.
// Rules are tried in order on each element; the last element any rule
// accepts names the container (nested runtimes: the innermost).
type containerRule struct {
	layout string         // what creates such a path, for documentation and tests
	re     *regexp.Regexp // submatch 1 is the id
	// runtime is the runtime the element names; parent, when set, makes
	// the rule apply only below an element equal to it.
	runtime string
	parent  string
}

const hex64 = `([0-9a-f]{64})`

// containerRules is the one table of container cgroup layouts. The
// systemd cgroup driver names a container's cgroup "<prefix>-<id>.scope"
// inside a slice; the cgroupfs driver uses the bare id below a directory
// of the runtime's. The conmon scopes of cri-o and podman
// ("crio-conmon-<id>.scope") hold the monitor, not the container: the
// rules do not match them.
var containerRules = []containerRule{
	{layout: "docker, systemd driver", re: regexp.MustCompile(`^docker-` + hex64 + `\.scope$`), runtime: RuntimeDocker},
	{layout: "docker, cgroupfs driver", re: regexp.MustCompile(`^` + hex64 + `$`), runtime: RuntimeDocker, parent: "docker"},
	{layout: "containerd (CRI), systemd driver", re: regexp.MustCompile(`^cri-containerd-` + hex64 + `\.scope$`), runtime: RuntimeContainerd},
	{layout: "cri-o, systemd driver", re: regexp.MustCompile(`^crio-` + hex64 + `\.scope$`), runtime: RuntimeCRIO},
	{layout: "podman, systemd driver", re: regexp.MustCompile(`^libpod-` + hex64 + `\.scope$`), runtime: RuntimePodman},
	{layout: "podman, cgroupfs driver", re: regexp.MustCompile(`^libpod-` + hex64 + `$`), runtime: RuntimePodman, parent: "libpod_parent"},
	{layout: "kubelet, cgroupfs driver (runtime not in the path)", re: regexp.MustCompile(`^` + hex64 + `$`)},
}

// podRules recognise the pod element of the kubepods hierarchy: systemd
// driver "kubepods-<qos>-pod<uid, dashes as underscores>.slice" (no qos:
// guaranteed), cgroupfs driver "pod<uid>" below "kubepods[/<qos>]".
var (
	podSlice = regexp.MustCompile(`^kubepods(?:-(besteffort|burstable))?-pod([0-9a-f_]{36})\.slice$`)
	podDir   = regexp.MustCompile(`^pod([0-9a-f-]{36})$`)
)

// Parse returns the identity path names (ID unset): the container id and
// runtime by containerRules, the pod's uid and QoS class below kubepods.
// A path no rule matches has only Path.
func Parse(path string) Identity {
	id := Identity{Path: path}
	elems := strings.Split(strings.Trim(path, "/"), "/")
	inKubepods := false
	for i, e := range elems {
		parent := ""
		if i > 0 {
			parent = elems[i-1]
		}
		if e == "kubepods" || e == "kubepods.slice" {
			inKubepods = true
		}
		if m := podSlice.FindStringSubmatch(e); m != nil {
			id.PodUID = strings.ReplaceAll(m[2], "_", "-")
			id.QoS = qosOr(m[1])
		} else if m := podDir.FindStringSubmatch(e); m != nil && inKubepods {
			id.PodUID = m[1]
			id.QoS = QoSGuaranteed
			if parent == QoSBestEffort || parent == QoSBurstable {
				id.QoS = parent
			}
		}
		for _, r := range containerRules {
			if r.parent != "" && r.parent != parent {
				continue
			}
			if r.parent == "" && r.runtime == "" && !inKubepods {
				continue // a bare id means a container only under kubepods
			}
			if m := r.re.FindStringSubmatch(e); m != nil {
				id.ContainerID, id.Runtime = m[1], r.runtime
				break
			}
		}
	}
	return id
}

func qosOr(q string) string {
	if q == "" {
		return QoSGuaranteed
	}
	return q
}
