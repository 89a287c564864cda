package sdk

import (
	"fmt"
	"os"
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

// TestBatcherOverloaded: a batcher given the host's pid (its parent)
// boosts it when told its input overflows and the host is in the
// background, at most every boostEvery, without waiting for the host
// even while its queue is full; the boosts reach the host as a counter.
// Any other pid is ignored.
func TestBatcherOverloaded(t *testing.T) {
	if bt := newBatcher("t", transport{FlushInterval: time.Hour, BoostPID: os.Getppid() + 1}, 2); bt.BoostsHost() {
		t.Error("a batcher boosts a process that is not its parent")
	}
	bt := newBatcher("t", transport{FlushInterval: time.Hour, BoostPID: os.Getppid()}, 2)
	if !bt.BoostsHost() {
		t.Fatal("a batcher given its parent's pid does not boost it")
	}
	idle, normals := true, 0
	bt.hostIdle = func(pid int) (bool, error) {
		if pid != os.Getppid() {
			t.Errorf("looked at process %d, want the parent %d", pid, os.Getppid())
		}
		return idle, nil
	}
	bt.hostNormal = func(int) (int, error) { normals++; idle = false; return 3, nil }

	// The host reads nothing: the queue fills and Emit's flush blocks
	// holding the batcher's lock, as when a host in the background stalls.
	bt.mu.Lock()
	for range queuedBatches {
		bt.flushLocked()
	}
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		bt.flushLocked() // waits for room, holding mu
		bt.mu.Unlock()
	}()
	bt.Overloaded()
	if normals != 1 {
		t.Fatalf("host boosted %d times, want 1 while its queue is full", normals)
	}
	bt.Overloaded() // within boostEvery, and the host is no longer idle
	time.Sleep(boostEvery)
	bt.Overloaded() // no longer idle
	if normals != 1 {
		t.Errorf("host boosted %d times, want 1: it was no longer in the background", normals)
	}
	idle = true
	time.Sleep(boostEvery)
	bt.Overloaded()
	if normals != 2 {
		t.Errorf("host boosted %d times, want 2: back in the background for %v", normals, boostEvery)
	}

	var last uint64
	read := make(chan struct{})
	go func() {
		defer close(read)
		for batch := range bt.out {
			for _, c := range batch.Losses {
				if c.Name == counterHostBoosts {
					last = c.Value
				}
			}
			bt.recycle(batch)
		}
	}()
	<-blocked
	bt.close()
	<-read
	if last != 2 {
		t.Errorf("last %s = %d, want 2", counterHostBoosts, last)
	}
}

// TestBatcherHostBehind: behind from three quarters of the data channel
// or half the queue, until under a quarter with the queue empty.
func TestBatcherHostBehind(t *testing.T) {
	bt := newBatcher("t", transport{FlushInterval: time.Hour}, 2)
	const limit = 8 << 20
	for _, step := range []struct {
		name    string
		backlog int
		queued  int
		want    bool
	}{
		{"idle", 0, 0, false},
		{"half the channel", limit / 2, 0, false},
		{"three quarters", limit / 4 * 3, 0, true},
		{"draining, still above a quarter", limit / 4, 0, true},
		{"under a quarter", limit/4 - 1, 0, false},
		{"half the queue of batches", 0, queuedBatches / 2, true},
		{"queue draining", 0, 1, true},
		{"queue empty", 0, 0, false},
	} {
		for len(bt.out) < step.queued {
			bt.out <- bt.newBatch()
		}
		for len(bt.out) > step.queued {
			<-bt.out
		}
		bt.noteBacklog(step.backlog, limit)
		if got := bt.HostBehind(); got != step.want {
			t.Errorf("%s: HostBehind = %v, want %v", step.name, got, step.want)
		}
	}
}
