package harness

import (
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
)

// DecodeAllocs returns, for a module's test, how many times decode (the
// module's Decode without its map) allocates per record raw once the
// event's buffers have grown: a module's decoding must not allocate per
// record. A failing decode fails t.
func DecodeAllocs(t testing.TB, decode func(raw []byte, ev *sdk.Event) error, raw []byte) float64 {
	t.Helper()
	var ev sdk.Event
	if err := decode(raw, &ev); err != nil {
		t.Fatalf("decoding the record: %v", err)
	}
	return testing.AllocsPerRun(1000, func() {
		ev.Reset()
		if err := decode(raw, &ev); err != nil {
			t.Fatalf("decoding the record again: %v", err)
		}
	})
}
