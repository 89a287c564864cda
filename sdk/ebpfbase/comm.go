package ebpfbase

import (
	"bytes"

	"github.com/ecaphost/ecaphost/sdk"
)

// commCache interns command names so that a name seen before costs no
// allocation; bounded, so a hostile workload renaming its processes
// cannot grow it. Not safe for concurrent use.
type commCache struct {
	in sdk.Interner
}

func (c *commCache) intern(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return c.in.String(b)
}

// Comm returns the NUL-terminated command name in b (a C char[16]) as a
// string, allocating only the first time a name is seen. Call it from
// Decode: it is not safe for concurrent use.
func (m *Module) Comm(b []byte) string { return m.comms.intern(b) }
