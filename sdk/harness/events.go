package harness

import (
	"fmt"
	"strings"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

// Stream concatenates, in order, the payloads of the events of process pid
// in direction dir on connection id (on any connection when id is 0): what
// a TLS module captured of one side of a conversation.
func Stream(evs []*sdk.Event, pid int, id uint64, dir sdk.Direction) []byte {
	var b []byte
	for _, ev := range evs {
		if int(ev.PID) == pid && ev.Conn.Direction == dir && (id == 0 || ev.Conn.ID == id) {
			b = append(b, ev.Payload...)
		}
	}
	return b
}

// describeMax is how many events Describe lists.
const describeMax = 30

// Describe lists events for a failure message, one per line (the first
// 30): kind, process, direction, connection, fields and the payload's
// first 60 bytes.
func Describe(evs []*sdk.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i == describeMax {
			fmt.Fprintf(&b, "\n\t... %d more", len(evs)-i)
			break
		}
		p := ev.Payload
		if len(p) > 60 {
			p = p[:60]
		}
		fmt.Fprintf(&b, "\n\t%s pid=%d comm=%s %s id=%x %v->%v %v %q", ev.Kind, ev.PID, ev.Comm, ev.Conn.Direction,
			ev.Conn.ID, ev.Conn.Local, ev.Conn.Remote, ev.Fields, p)
	}
	return b.String()
}

// Poll calls cond every 20 ms until it holds or timeout has passed, and
// returns its last result: for conditions on more than one event, where
// Host.WaitFor's one match does not do.
func Poll(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
