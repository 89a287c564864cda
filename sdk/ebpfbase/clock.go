package ebpfbase

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// monotonicOffsetNs is wall time minus monotonic time, in nanoseconds,
// measured once per process.
var monotonicOffsetNs = sync.OnceValue(monotonicOffset)

// monotonicOffset measures wall - monotonic: the monotonic clock is read
// before and after the wall clock and the sample with the narrowest window
// of a few is kept, so the error is the window (well under a microsecond).
func monotonicOffset() int64 {
	best, bestWindow := int64(0), int64(-1)
	for i := 0; i < 5; i++ {
		var a, b unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &a) != nil {
			continue
		}
		wall := time.Now().UnixNano()
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &b) != nil {
			continue
		}
		an, bn := a.Nano(), b.Nano()
		if w := bn - an; bestWindow < 0 || w < bestWindow {
			best, bestWindow = wall-(an+(bn-an)/2), w
		}
	}
	return best
}

// KtimeToTime converts a kernel timestamp of bpf_ktime_get_ns (the
// monotonic clock) to wall time. The offset between the clocks is measured
// once per process, at the first call; a wall clock changed later (NTP
// step, settimeofday) is not followed. It is safe for concurrent use.
func KtimeToTime(ns uint64) time.Time { return time.Unix(0, monotonicOffsetNs()+int64(ns)) }
