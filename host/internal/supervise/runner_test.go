package supervise

import (
	"testing"

	"github.com/ecaphost/ecaphost/sdk/pluginhost"
)

// TestBehind: the runner is behind at three quarters of what the data
// channel holds, or at three batches when its size is unknown.
func TestBehind(t *testing.T) {
	for _, tc := range []struct {
		backlog, limit int
		want           bool
	}{
		{0, 8 << 20, false},
		{3 << 20, 8 << 20, false}, // three batches of an 8 MiB channel: not yet
		{6<<20 - 1, 8 << 20, false},
		{6 << 20, 8 << 20, true},
		{300 << 10, 400 << 10, true}, // a small channel fills sooner
		{3<<20 - 1, 0, false},
		{3 << 20, 0, true},
	} {
		if got := behind(&pluginhost.Batch{Backlog: tc.backlog, BacklogLimit: tc.limit}); got != tc.want {
			t.Errorf("behind(backlog %d, limit %d) = %v, want %v", tc.backlog, tc.limit, got, tc.want)
		}
	}
}
