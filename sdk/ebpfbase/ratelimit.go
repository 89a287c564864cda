package ebpfbase

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// logInterval is the least time between two logs of a rateLimiter.
const logInterval = 5 * time.Second

// rateLimiter logs a recurring problem at most once per logInterval, with
// the number of occurrences it kept quiet. Not safe for concurrent use.
type rateLimiter struct {
	last       time.Time
	suppressed uint64
}

func (r *rateLimiter) log(l hclog.Logger, msg string, args ...any) {
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < logInterval {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed", r.suppressed)
	}
	l.Warn(msg, args...)
	r.last, r.suppressed = now, 0
}
