package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
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

// Find returns the first of evs of kind whose payload is payload, nil if
// none is.
func Find(evs []*sdk.Event, kind, payload string) *sdk.Event {
	for _, ev := range evs {
		if ev.Kind == kind && string(ev.Payload) == payload {
			return ev
		}
	}
	return nil
}

// Marker returns a random word ("marker-" and 12 hex digits) for a test to
// put in what it makes the traced program do, so that it can tell its own
// events from those of everything else the machine runs meanwhile.
func Marker(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "marker-" + hex.EncodeToString(b)
}
