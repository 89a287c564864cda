package ebpfbase

import "bytes"

// maxComms bounds the comm cache: a hostile workload renaming its
// processes must not grow it without limit.
const maxComms = 4096

// commCache interns command names so that a name seen before costs no
// allocation. Not safe for concurrent use.
type commCache struct {
	m map[string]string
}

func (c *commCache) intern(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return ""
	}
	// m[string(b)] does not allocate: the compiler looks b up in place.
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	if c.m == nil || len(c.m) >= maxComms {
		c.m = make(map[string]string, 64)
	}
	s := string(b)
	c.m[s] = s
	return s
}

// Comm returns the NUL-terminated command name in b (a C char[16]) as a
// string, allocating only the first time a name is seen. Call it from
// Decode: it is not safe for concurrent use.
func (m *Module) Comm(b []byte) string { return m.comms.intern(b) }
