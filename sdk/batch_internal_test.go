package sdk

import (
	"testing"
	"time"
)

// BenchmarkBatcherEmit measures the plugin's hot path alone (event →
// reused protobuf batch), with a consumer recycling batches as the stream
// does. It must not allocate per event.
func BenchmarkBatcherEmit(b *testing.B) {
	bt := newBatcher("bench", Transport{FlushInterval: time.Hour})
	done := make(chan struct{})
	go func() {
		for batch := range bt.out {
			bt.recycle(batch)
		}
		close(done)
	}()
	ev := Event{Kind: "tls_data", PID: 1, Comm: "bench", Payload: make([]byte, 256), Fields: []Field{{Key: "lib", Value: "openssl"}}}
	ev.Conn.ID, ev.Conn.Direction = 5, DirectionEgress
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		bt.Emit(&ev)
	}
	b.StopTimer()
	bt.close()
	<-done
}

func TestBatcherEmitDoesNotAllocatePerEvent(t *testing.T) {
	res := testing.Benchmark(BenchmarkBatcherEmit)
	// Per-batch work (counter snapshot, sequence) is spread over 1024
	// events; anything per event shows up as >= 1.
	if a := res.AllocsPerOp(); a >= 1 {
		t.Errorf("Emit allocates %d times per event", a)
	}
}
