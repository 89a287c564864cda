package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
)

// mountsFile is where the cgroup2 mount is looked up; a variable for
// tests.
var mountsFile = "/proc/mounts"

// parseCgroupFilter reads a module block's cgroup or container setting
// and resolves it into m.Common's cgroup filter: the cgroup (path below
// the cgroup2 mount) and its descendants, or the container whose id
// starts with the given prefix. A cgroup that does not exist, or a prefix
// that names no container or more than one, is a diagnostic on the
// attribute.
func parseCgroupFilter(m *Module, attrs hcl.Attributes, ctx *hcl.EvalContext) hcl.Diagnostics {
	cgAttr, hasCg := attrs["cgroup"]
	ctrAttr, hasCtr := attrs["container"]
	if !hasCg && !hasCtr {
		return nil
	}
	if hasCg && hasCtr {
		return hcl.Diagnostics{attrDiag(ctrAttr, ctx, "Conflicting filters",
			fmt.Sprintf(`Set "cgroup" or "container", not both: the container is a cgroup ("cgroup" is set at %s).`, pos(cgAttr.Range)))}
	}
	attr := cgAttr
	if hasCtr {
		attr = ctrAttr
	}
	val, ok, diags := evalString(attr, ctx)
	if !ok {
		return diags
	}
	mount, err := cgroup.Mount(mountsFile)
	if err != nil {
		return append(diags, attrDiag(attr, ctx, "No cgroup v2 hierarchy",
			fmt.Sprintf("The cgroup and container filters need the unified (v2) cgroup hierarchy: %v.", err)))
	}
	path := val
	if hasCtr {
		p, d := findContainer(mount, val)
		if d != "" {
			return append(diags, attrDiag(attr, ctx, "Invalid container", d))
		}
		path = p
	} else if !strings.HasPrefix(val, "/") {
		return append(diags, attrDiag(attr, ctx, "Invalid cgroup",
			fmt.Sprintf(`"cgroup" is a path below the cgroup2 mount %s, starting with "/" (e.g. "/kubepods.slice"), not %q.`, mount, val)))
	}
	id, level, err := cgroup.ID(mount, path)
	if err != nil {
		detail := fmt.Sprintf("%v.", err)
		if errors.Is(err, fs.ErrNotExist) {
			detail = fmt.Sprintf("There is no cgroup %s below the cgroup2 mount %s (see /proc/PID/cgroup, line 0::, for a process's).", path, mount)
		}
		return append(diags, attrDiag(attr, ctx, "Invalid cgroup", detail))
	}
	m.Common.CgroupID, m.Common.CgroupLevel, m.Common.CgroupPath = id, level, path
	return diags
}

// findContainer returns the cgroup of the one running container whose id
// starts with prefix, or why there is none.
func findContainer(mount, prefix string) (string, string) {
	if prefix == "" || strings.Trim(prefix, "0123456789abcdef") != "" || len(prefix) > 64 {
		return "", fmt.Sprintf(`"container" is a container id or a prefix of one (lower-case hex digits), not %q.`, prefix)
	}
	found, err := cgroup.Find(mount, prefix)
	if err != nil {
		return "", fmt.Sprintf("Looking for container %s: %v.", prefix, err)
	}
	switch len(found) {
	case 0:
		return "", fmt.Sprintf("No running container's id starts with %q (containers are found by their cgroups below %s).", prefix, mount)
	case 1:
		return found[0].Path, ""
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.ContainerID[:min(12, len(f.ContainerID))])
	}
	return "", fmt.Sprintf("%d running containers have ids starting with %q (%s): give more of the id.", len(found), prefix, strings.Join(ids, ", "))
}
