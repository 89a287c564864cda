package pgmod

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// backend is what the process title of a backend says about it.
type backend struct {
	user, database string
}

// backendCache maps a backend's pid to its user and database, read once
// from its process title. The kernel reports every exit of a backend that
// sent a record, and Dispatch forgets its pid. Bounded: past maxBackends
// entries it starts over. Used by the goroutine running Run only.
type backendCache struct {
	m     map[uint32]backend
	title func(pid uint32) []byte
}

const maxBackends = 65536

// lookup returns what is known of backend pid, reading its title on the
// first call.
func (c *backendCache) lookup(pid uint32, in *ebpfbase.Interner) backend {
	if b, ok := c.m[pid]; ok {
		return b
	}
	b := parseTitle(c.title(pid), in)
	if c.m == nil || len(c.m) >= maxBackends {
		c.m = make(map[uint32]backend, 64)
	}
	c.m[pid] = b
	return b
}

func (c *backendCache) forget(pid uint32) { delete(c.m, pid) }

// procTitle returns the command line of process pid, where PostgreSQL
// writes its process title, or nil.
func procTitle(pid uint32) []byte {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.FormatUint(uint64(pid), 10), "cmdline"))
	if err != nil {
		return nil
	}
	return b
}

// parseTitle reads user and database from a backend's process title:
// "postgres: [cluster_name: ]user database host activity". A title of
// another shape (update_process_title off, a background worker) gives
// nothing.
func parseTitle(title []byte, in *ebpfbase.Interner) backend {
	title = trimNUL(title)
	rest, ok := bytes.CutPrefix(title, []byte("postgres: "))
	if !ok {
		return backend{}
	}
	words := bytes.Fields(rest)
	if len(words) > 0 && bytes.HasSuffix(words[0], []byte(":")) {
		words = words[1:] // cluster_name
	}
	if len(words) < 3 { // user, database, host at least
		return backend{}
	}
	return backend{user: in.String(words[0]), database: in.String(words[1])}
}
