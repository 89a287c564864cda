package sdk_test

import (
	"fmt"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

// BenchmarkStream measures events/s through one plugin stream: module
// Emit → batcher → gRPC or the data channel → host decoder, for each
// transport mode.
func BenchmarkStream(b *testing.B) {
	for _, m := range transportModes {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("%s/%s", m.name, sizeName(size)), func(b *testing.B) { benchStream(b, m, size) })
		}
	}
}

func benchStream(b *testing.B, mode transportMode, size int) {
	f := newFake()
	f.info.APIVersions = []uint32{mode.v}
	h := harness.NewWith(b, f, harness.Options{NoDataChannel: mode.noData})
	if ds := h.Configure(b, sdk.Settings{}); ds.HasErrors() {
		b.Fatal(ds)
	}
	h.Start(b)
	payload := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	f.run(func(s sdk.Sink) {
		ev := sdk.Event{Kind: "tls_data", PID: 1, Comm: "bench", Payload: payload}
		for range b.N {
			s.Emit(&ev)
		}
	})
	h.Stop(b)
	b.StopTimer()
	if got := len(h.Events()); got != b.N {
		b.Fatalf("%d events arrived, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEmit measures the plugin side alone: no allocation per event.
func BenchmarkEmit(b *testing.B) {
	f := newFake()
	h := harness.New(b, f)
	if ds := h.Configure(b, sdk.Settings{}); ds.HasErrors() {
		b.Fatal(ds)
	}
	h.Start(b)
	payload := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	f.run(func(s sdk.Sink) {
		ev := sdk.Event{Kind: "tls_data", PID: 1, Comm: "bench", Payload: payload, Fields: []sdk.Field{{Key: "lib", Value: "openssl"}}}
		for range b.N {
			s.Emit(&ev)
		}
	})
	b.StopTimer()
	h.Stop(b)
}

func sizeName(n int) string {
	if n >= 1024 {
		return string(rune('0'+n/1024)) + "KiB"
	}
	return "64B"
}
