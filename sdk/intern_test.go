package sdk

import (
	"strings"
	"testing"
)

func TestInternerBounded(t *testing.T) {
	var in Interner
	for i := 0; i < maxInterned*3; i++ {
		in.String([]byte(strings.Repeat("x", i%15) + string(rune('a'+i%26)) + string(rune('a'+(i/26)%26)) + string(rune('a'+(i/676)%26))))
	}
	if len(in.m) > maxInterned {
		t.Errorf("table holds %d strings, bound is %d", len(in.m), maxInterned)
	}
	long := []byte(strings.Repeat("y", maxInternedSize+1))
	if s := in.String(long); s != string(long) || in.m[s] != "" {
		t.Errorf("a %d-byte value was kept (or changed)", len(long))
	}
}
