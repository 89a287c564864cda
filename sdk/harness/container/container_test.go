package container

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk/cgroup"
)

// TestContainer checks what the e2e tests rely on: the process runs in
// its own pid namespace and root, in the Kubernetes-style cgroup, with
// its own copy of the libraries.
func TestContainer(t *testing.T) {
	root := NewRootFS(t, "/bin/sh", "cat")
	c := Start(t, root, nil, "/bin/sh", "-c", `echo pid=$$; cat /proc/self/cgroup`)
	if !c.Wait(10 * time.Second) {
		t.Fatalf("container did not exit:\n%s", c.Stdout.String())
	}
	out := c.Stdout.String()
	if !strings.Contains(out, "pid=1\n") {
		t.Errorf("not pid 1 in its pid namespace:\n%s", out)
	}
	if !strings.Contains(out, "0::"+c.Cgroup+"\n") {
		t.Errorf("not in cgroup %s:\n%s", c.Cgroup, out)
	}
	v := cgroup.Parse(c.Cgroup)
	if v.ContainerID != c.ID || v.PodUID != c.PodUID || v.QoS != cgroup.QoSBestEffort || v.Runtime != cgroup.RuntimeContainerd {
		t.Errorf("cgroup path %s parses as %+v", c.Cgroup, v)
	}
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	host, err1 := os.Stat(libc)
	copied, err2 := os.Stat(root.Path(libc))
	if err1 == nil && (err2 != nil || host.Sys().(*syscall.Stat_t).Ino == copied.Sys().(*syscall.Stat_t).Ino) {
		t.Errorf("the root's %s is not a copy: %v", libc, err2)
	}
}
