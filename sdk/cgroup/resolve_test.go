package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMount(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, text, want string
		err              error
	}{
		{"hybrid", "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n", "/sys/fs/cgroup/unified", nil},
		{"pure v2", "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n", "/sys/fs/cgroup", nil},
		{"escaped", "none /mnt/cg\\040two cgroup2 rw 0 0\n", "/mnt/cg two", nil},
		{"v1 only", "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n", "", ErrNoCgroup2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Mount(p)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Mount = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestResolver creates a cgroup of a container's layout in the real
// cgroup2 hierarchy (root only) and resolves its id back, then removes it
// and checks that the id is still shown, unresolved.
func TestResolver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a cgroup")
	}
	mount, err := Mount("/proc/mounts")
	if err != nil {
		t.Skip(err)
	}
	rel := "/ecaphost-test-" + strings.ReplaceAll(t.Name(), "/", "_") + ".slice/docker-" + idA + ".scope"
	top := filepath.Join(mount, strings.Split(rel, "/")[1])
	if err := os.MkdirAll(filepath.Join(mount, rel), 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(mount, rel)); _ = os.Remove(top) })
	id, level, err := ID(mount, rel)
	if err != nil {
		t.Fatal(err)
	}
	if level != 2 {
		t.Errorf("level %d, want 2", level)
	}
	r := NewResolver(mount)
	defer r.Close()
	got := r.Lookup(id)
	if got.Path != rel || got.ContainerID != idA || got.Runtime != RuntimeDocker || got.ID != id {
		t.Errorf("Lookup(%d) = %+v, want path %s, docker %s", id, got, rel, idA)
	}
	found, err := Find(mount, idA[:12])
	if err != nil || len(found) != 1 || found[0].ID != id {
		t.Errorf("Find = %+v, %v; want one with id %d", found, err, id)
	}
	// A removed cgroup: a fresh resolver cannot resolve it, and says the id.
	if err := os.Remove(filepath.Join(mount, rel)); err != nil {
		t.Fatal(err)
	}
	r2 := NewResolver(mount)
	defer r2.Close()
	if got := r2.Lookup(id); got.ID != id || got.Path != "" {
		t.Errorf("Lookup of a removed cgroup = %+v, want only id %d", got, id)
	}
	// The first resolver kept what it saw while the cgroup existed.
	if got := r.Lookup(id); got.ContainerID != idA {
		t.Errorf("cached Lookup after removal = %+v", got)
	}
	if root := r.Lookup(mustID(t, mount, "/")); root.Path != "/" {
		t.Errorf("root resolves to %q", root.Path)
	}
}

func mustID(t *testing.T, mount, p string) uint64 {
	id, _, err := ID(mount, p)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
