package output

import (
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/shared/proto/outputv1"
)

// Cgroups turns the cgroup id of an event into its path and container
// (a *cgroup.Resolver). Lookup must be safe for concurrent use: every
// Writer calls it from its own goroutine.
type Cgroups interface {
	Lookup(id uint64) *cgroup.Identity
}

// cgroupCache is an Encoder's memory of the last identity it looked up
// and of its encodings: events come in runs from one task, and the
// Cgroups behind it takes a lock.
type cgroupCache struct {
	src      Cgroups
	id       uint64
	ident    *cgroup.Identity
	text     []byte
	json     []byte
	pb       outputv1.Cgroup
	resolved bool // ident has a path: the encodings never change
}

// lookup returns the identity of ev's cgroup, nil when ev has none. An
// identity without a path is looked up again at the next event: its
// cgroup may have been too new or is gone.
func (c *cgroupCache) lookup(ev *sdk.Event) *cgroup.Identity {
	if ev.CgroupID == 0 {
		return nil
	}
	if c.ident != nil && c.id == ev.CgroupID && c.resolved {
		return c.ident
	}
	var v *cgroup.Identity
	if c.src != nil {
		v = c.src.Lookup(ev.CgroupID)
	}
	if v == nil {
		v = &cgroup.Identity{ID: ev.CgroupID}
	}
	c.id, c.ident, c.resolved = ev.CgroupID, v, v.Path != ""
	c.text = appendCgroupText(c.text[:0], v)
	c.json = appendCgroupJSON(c.json[:0], v)
	c.pb = outputv1.Cgroup{Id: v.ID, Path: validUTF8(v.Path), ContainerId: v.ContainerID,
		ContainerRuntime: v.Runtime, PodUid: v.PodUID, QosClass: v.QoS}
	return v
}

// appendCgroupText appends " cgroup=PATH" and the container's keys, or
// " cgroup_id=N" for a cgroup without a known path.
func appendCgroupText(dst []byte, v *cgroup.Identity) []byte {
	if v.Path == "" {
		dst = append(dst, " cgroup_id="...)
		return strconv.AppendUint(dst, v.ID, 10)
	}
	dst = append(dst, " cgroup="...)
	dst = appendTextValue(dst, v.Path)
	for _, kv := range [...][2]string{
		{"container_id", v.ContainerID}, {"container_runtime", v.Runtime},
		{"pod_uid", v.PodUID}, {"qos_class", v.QoS},
	} {
		if kv[1] != "" {
			dst = append(dst, ' ')
			dst = append(dst, kv[0]...)
			dst = append(dst, '=')
			dst = appendTextValue(dst, kv[1])
		}
	}
	return dst
}

// appendCgroupJSON appends ,"cgroup":{...}: the id always, the other keys
// when known.
func appendCgroupJSON(dst []byte, v *cgroup.Identity) []byte {
	dst = append(dst, `,"cgroup":{"id":`...)
	dst = strconv.AppendUint(dst, v.ID, 10)
	for _, kv := range [...][2]string{
		{"path", v.Path}, {"container_id", v.ContainerID}, {"container_runtime", v.Runtime},
		{"pod_uid", v.PodUID}, {"qos_class", v.QoS},
	} {
		if kv[1] != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, kv[0]...)
			dst = append(dst, `":`...)
			dst = appendJSONString(dst, kv[1])
		}
	}
	return append(dst, '}')
}
