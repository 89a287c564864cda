package sdk

// Interner turns byte slices into strings, allocating only the first time
// a value is seen: command names, event kinds, field keys repeat from
// event to event. It is bounded: values longer than 64 bytes are copied,
// not kept, and past 4096 values the table starts over, so hostile input
// cannot grow it. The zero value is ready; not safe for concurrent use.
type Interner struct {
	m map[string]string
}

const (
	maxInterned     = 4096
	maxInternedSize = 64
)

// String returns b as a string.
func (in *Interner) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInternedSize {
		return string(b)
	}
	// m[string(b)] does not allocate: the compiler looks b up in place.
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 64)
	}
	s := string(b)
	in.m[s] = s
	return s
}
