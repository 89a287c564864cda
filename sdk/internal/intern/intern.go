package intern

// Interner turns byte slices into strings, allocating only the first time
// a value is seen: command names, event kinds, field keys repeat from
// event to event. It is bounded: values longer than 64 bytes are copied,
// not kept, and past 4096 values the table starts over, so hostile input
// cannot grow it. The zero value is ready; not safe for concurrent use.
type Interner struct {
	m map[string]string
	// recent holds the last value seen per slot of a cheap hash: the
	// values of one stream repeat, and comparing bytes costs a fraction
	// of hashing them for the map (the host decodes a dozen strings per
	// event).
	recent [internSlots]string
}

const (
	maxInterned     = 4096
	maxInternedSize = 64
	internSlots     = 64 // a power of two
)

// String returns b as a string.
func (in *Interner) String(b []byte) string {
	n := len(b)
	if n == 0 {
		return ""
	}
	if n > maxInternedSize {
		return string(b)
	}
	slot := &in.recent[(uint(n)*31+uint(b[0])*7+uint(b[n-1]))&(internSlots-1)]
	// Comparing with string(b) does not allocate.
	if *slot == string(b) {
		return *slot
	}
	// m[string(b)] does not allocate: the compiler looks b up in place.
	s, ok := in.m[string(b)]
	if !ok {
		if in.m == nil || len(in.m) >= maxInterned {
			in.m = make(map[string]string, 64)
		}
		s = string(b)
		in.m[s] = s
	}
	*slot = s
	return s
}
