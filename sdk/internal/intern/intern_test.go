package intern

import (
	"strings"
	"testing"
	"unsafe"
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

// TestInternerSameString: a value seen again, through the recent slots or
// the table, is the very string returned the first time; values sharing a
// slot stay apart.
func TestInternerSameString(t *testing.T) {
	var in Interner
	values := []string{"SSL_write", "SSL_read", "openssl", "fn", "lib", "nginx", "wrk", "a", "b", "ab", "ba", "SSL_read_ex"}
	first := map[string]string{}
	for round := 0; round < 3; round++ {
		for _, v := range values {
			got := in.String([]byte(v))
			if got != v {
				t.Fatalf("String(%q) = %q", v, got)
			}
			if f, ok := first[v]; ok && unsafe.StringData(f) != unsafe.StringData(got) {
				t.Errorf("String(%q) returned a new copy in round %d", v, round)
			}
			first[v] = got
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		for _, v := range values {
			in.String([]byte(v))
		}
	}); a != 0 {
		t.Errorf("%v allocations for values seen before", a)
	}
}

func BenchmarkInterner(b *testing.B) {
	var in Interner
	vals := [][]byte{[]byte("tls_data"), []byte("nginx"), []byte("lib"), []byte("openssl"), []byte("fn"), []byte("SSL_write")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, v := range vals {
			in.String(v)
		}
	}
}
