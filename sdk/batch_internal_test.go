package sdk

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkBatcherEmit measures the plugin's hot path alone (event →
// reused batch), with a consumer recycling batches as the stream does, for
// packed batches (API version 2) and an event message each (version 1).
// It must not allocate per event.
func BenchmarkBatcherEmit(b *testing.B) {
	for _, v := range []uint32{2, 1} {
		b.Run(fmt.Sprintf("api%d", v), func(b *testing.B) { benchEmit(b, v) })
	}
}

func benchEmit(b *testing.B, apiVersion uint32) {
	bt := newBatcher("bench", transport{FlushInterval: time.Hour}, apiVersion)
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
	for _, v := range []uint32{1, 2} {
		res := testing.Benchmark(func(b *testing.B) { benchEmit(b, v) })
		// Per-batch work (counter snapshot, sequence) is spread over 1024
		// events; anything per event shows up as >= 1.
		if a := res.AllocsPerOp(); a >= 1 {
			t.Errorf("API version %d: Emit allocates %d times per event", v, a)
		}
	}
}

// TestBatcherCountersAcrossRecycledBatches: batches carry every counter,
// in name order, however their buffers were reused.
func TestBatcherCountersAcrossRecycledBatches(t *testing.T) {
	bt := newBatcher("t", transport{FlushInterval: time.Hour}, 2)
	got := make(chan []string, 64)
	go func() {
		for batch := range bt.out {
			var names []string
			for _, c := range batch.Losses {
				names = append(names, c.Name)
			}
			got <- names
			bt.recycle(batch)
		}
		close(got)
	}()
	for i, name := range []string{"c", "a", "e", "b", "d", "f", "g"} {
		bt.SetCounter(name, uint64(i))
		bt.mu.Lock()
		bt.flushLocked()
		bt.mu.Unlock()
	}
	bt.close()
	var last []string
	for names := range got {
		last = names
	}
	if want := []string{"a", "b", "c", "d", "e", "f", "g"}; !slices.Equal(last, want) {
		t.Errorf("last batch's counters %v, want %v", last, want)
	}
}
