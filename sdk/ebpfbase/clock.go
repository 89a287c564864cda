package ebpfbase

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// clock converts kernel CLOCK_MONOTONIC timestamps (bpf_ktime_get_ns) to
// wall time with an offset measured once.
type clock struct {
	once sync.Once
	// offsetNs is wall time minus monotonic time, in nanoseconds.
	offsetNs int64
}

func (c *clock) init() { c.once.Do(func() { c.offsetNs = monotonicOffset() }) }

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

func (c *clock) time(ns uint64) time.Time {
	c.init()
	return time.Unix(0, c.offsetNs+int64(ns))
}

// KtimeToTime converts a kernel timestamp of bpf_ktime_get_ns (the
// monotonic clock) to wall time. The offset between the clocks is measured
// once, at Start or at the first call; a wall clock changed later (NTP
// step, settimeofday) is not followed.
func (m *Module) KtimeToTime(ns uint64) time.Time { return m.clock.time(ns) }
