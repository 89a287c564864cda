package harness

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestStream(t *testing.T) {
	ev := func(pid uint32, id uint64, dir sdk.Direction, p string) *sdk.Event {
		return &sdk.Event{PID: pid, Conn: sdk.Connection{ID: id, Direction: dir}, Payload: []byte(p)}
	}
	evs := []*sdk.Event{
		ev(1, 7, sdk.DirectionEgress, "GET "),
		ev(1, 7, sdk.DirectionIngress, "HTTP/1.1"),
		ev(2, 7, sdk.DirectionEgress, "other process"),
		ev(1, 8, sdk.DirectionEgress, "[conn 8]"),
		ev(1, 7, sdk.DirectionEgress, "/ HTTP/1.1"),
	}
	for _, tc := range []struct {
		id   uint64
		dir  sdk.Direction
		want string
	}{
		{7, sdk.DirectionEgress, "GET / HTTP/1.1"},
		{7, sdk.DirectionIngress, "HTTP/1.1"},
		{0, sdk.DirectionEgress, "GET [conn 8]/ HTTP/1.1"},
		{9, sdk.DirectionEgress, ""},
	} {
		if got := string(Stream(evs, 1, tc.id, tc.dir)); got != tc.want {
			t.Errorf("Stream(pid 1, conn %d, %s) = %q, want %q", tc.id, tc.dir, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	evs := make([]*sdk.Event, describeMax+5)
	for i := range evs {
		evs[i] = &sdk.Event{Kind: "tls_data", PID: 42, Comm: "curl", Payload: []byte(strings.Repeat("x", 100))}
	}
	d := Describe(evs)
	if n := strings.Count(d, "pid=42 comm=curl"); n != describeMax {
		t.Errorf("%d events listed, want %d", n, describeMax)
	}
	if !strings.Contains(d, "... 5 more") || strings.Contains(d, strings.Repeat("x", 61)) {
		t.Errorf("Describe = %s", d)
	}
}

func TestPoll(t *testing.T) {
	var n atomic.Int32
	if !Poll(time.Second, func() bool { return n.Add(1) == 3 }) {
		t.Error("Poll gave up on a condition that came true on the third call")
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its timeout", d)
	}
}
