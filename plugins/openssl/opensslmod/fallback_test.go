package opensslmod

import (
	"testing"
	"time"
)

// TestPendingNeed: when a pending session asks for the fallback probes,
// and when the module gives up on it.
func TestPendingNeed(t *testing.T) {
	const now = uint64(100 * time.Second)
	ago := func(d time.Duration) uint64 { return now - uint64(d) }
	for _, tc := range []struct {
		name string
		v    pendingSession
		want int
	}{
		{"just made", pendingSession{CreatedNS: ago(10 * time.Millisecond)}, pendingWaits},
		{"no handshake call within the grace", pendingSession{CreatedNS: ago(fallbackGrace)}, pendingNeeds},
		{"handshake entered lately", pendingSession{CreatedNS: ago(time.Second), HandshakeNS: ago(time.Second)}, pendingWaits},
		{"handshake entered, not keyed", pendingSession{CreatedNS: ago(3 * time.Second), HandshakeNS: ago(fallbackHandshakeGrace)}, pendingNeeds},
		{"given up", pendingSession{CreatedNS: ago(fallbackGrace + fallbackGiveUp)}, pendingGiveUp},
		{"given up after a handshake call", pendingSession{CreatedNS: ago(time.Minute), HandshakeNS: ago(fallbackHandshakeGrace + fallbackGiveUp)}, pendingGiveUp},
		{"from the future (clock read first)", pendingSession{CreatedNS: now + 1}, pendingWaits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pendingNeed(now, tc.v); got != tc.want {
				t.Errorf("pendingNeed = %d, want %d", got, tc.want)
			}
		})
	}
}
