package cgroup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoCgroup2 is wrapped by Mount when no cgroup2 file system is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 file system mounted")

// Mount returns where the unified (cgroup v2) hierarchy is mounted, read
// from mounts (a /proc/mounts file): /sys/fs/cgroup on a pure v2 machine,
// /sys/fs/cgroup/unified on a hybrid one. The first cgroup2 mount wins.
func Mount(mounts string) (string, error) {
	data, err := os.ReadFile(mounts)
	if err != nil {
		return "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[2] == "cgroup2" {
			return unescapeMount(f[1]), nil
		}
	}
	return "", fmt.Errorf("finding the cgroup2 mount in %s: %w", mounts, ErrNoCgroup2)
}

// unescapeMount undoes the octal escapes of /proc/mounts (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ID returns the cgroup v2 id and depth (0 for the root) of the cgroup at
// path below mount ("/kubepods.slice/..."): what the kernel's
// bpf_get_current_cgroup_id and bpf_get_current_ancestor_cgroup_id say
// for it.
func ID(mount, path string) (id uint64, level uint32, err error) {
	clean := filepath.Clean("/" + path)
	st, err := os.Stat(filepath.Join(mount, clean))
	if err != nil {
		return 0, 0, fmt.Errorf("looking up cgroup %s: %w", clean, err)
	}
	if !st.IsDir() {
		return 0, 0, fmt.Errorf("looking up cgroup %s: not a directory", clean)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("looking up cgroup %s: no inode number", clean)
	}
	if clean != "/" {
		level = uint32(strings.Count(clean, "/"))
	}
	return sys.Ino, level, nil
}

// fileidKernfs is the file handle type of kernfs (FILEID_KERNFS), whose
// 8-byte handle is the node's id: a cgroup's id on cgroup2.
const fileidKernfs = 0xfe

// maxCached bounds a Resolver's cache; past it the cache starts over.
const maxCached = 1 << 16

// Resolver maps cgroup ids to identities, caching what it found. It is
// safe for concurrent use. The zero value is not usable: see NewResolver.
type Resolver struct {
	mount string
	mu    sync.Mutex
	mfd   int // the mount, opened once for open_by_handle_at; -1 if not
	cache map[uint64]*Identity
}

// NewResolver returns a resolver of the cgroup2 hierarchy at mount (see
// Mount).
func NewResolver(mount string) *Resolver {
	return &Resolver{mount: mount, mfd: -1, cache: map[uint64]*Identity{}}
}

// Mount returns the cgroup2 mount r resolves in.
func (r *Resolver) Mount() string { return r.mount }

// Lookup returns the identity of cgroup id. An id that cannot be resolved
// (the cgroup is gone, or id is 0) has only ID set; it is not cached, so a
// later call tries again. The result is shared: do not modify it.
func (r *Resolver) Lookup(id uint64) *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.cache[id]; ok {
		return v
	}
	path, err := r.pathLocked(id)
	if err != nil {
		return &Identity{ID: id}
	}
	v := Parse(path)
	v.ID = id
	if len(r.cache) >= maxCached {
		clear(r.cache)
	}
	r.cache[id] = &v
	return &v
}

// Path returns the path of cgroup id below the mount.
func (r *Resolver) Path(id uint64) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pathLocked(id)
}

func (r *Resolver) pathLocked(id uint64) (string, error) {
	if id == 0 {
		return "", errors.New("resolving cgroup id 0: unknown")
	}
	if r.mfd < 0 {
		fd, err := unix.Open(r.mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("opening the cgroup2 mount %s: %w", r.mount, err)
		}
		r.mfd = fd
	}
	var h [8]byte
	binary.NativeEndian.PutUint64(h[:], id)
	fd, err := unix.OpenByHandleAt(r.mfd, unix.NewFileHandle(fileidKernfs, h[:]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_PATH)
	if err != nil {
		return "", fmt.Errorf("resolving cgroup id %d: %w", id, err)
	}
	defer unix.Close(fd)
	full, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("resolving cgroup id %d: %w", id, err)
	}
	rel, ok := strings.CutPrefix(full, strings.TrimSuffix(r.mount, "/"))
	if !ok || (rel != "" && rel[0] != '/') {
		return "", fmt.Errorf("resolving cgroup id %d: %s is outside %s", id, full, r.mount)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// Close releases the resolver's descriptor of the mount.
func (r *Resolver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mfd >= 0 {
		err := unix.Close(r.mfd)
		r.mfd = -1
		return err
	}
	return nil
}

// Find returns the cgroups below mount whose container id (Parse) starts
// with prefix, the container filter's lookup. Each container is listed
// once, by the highest cgroup naming it (its processes may sit in
// sub-cgroups of it).
func Find(mount, prefix string) ([]Identity, error) {
	var out []Identity
	seen := map[string]bool{}
	err := filepath.WalkDir(mount, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p == mount {
				return err
			}
			return nil // a cgroup removed while walking
		}
		if !d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, strings.TrimSuffix(mount, "/"))
		if rel == "" {
			rel = "/"
		}
		v := Parse(rel)
		if v.ContainerID == "" || !strings.HasPrefix(v.ContainerID, prefix) || seen[v.ContainerID] {
			return nil
		}
		id, _, err := ID(mount, rel)
		if err != nil {
			return nil
		}
		v.ID = id
		seen[v.ContainerID] = true
		out = append(out, v)
		return filepath.SkipDir
	})
	if err != nil {
		return nil, fmt.Errorf("listing the cgroups of %s: %w", mount, err)
	}
	return out, nil
}
