package sdk

import (
	"net/netip"
	"time"
)

// Route says where an event goes once decoded. It carries over the three
// event kinds of eCapture's design.
type Route uint8

const (
	// RouteOutput events are formatted and written by the host as they are.
	RouteOutput Route = iota
	// RouteStream events are records of a connection's byte stream: the
	// host joins them per connection and direction and decodes the
	// protocol (HTTP/1.x, HTTP/2) before output.
	RouteStream
	// RouteModule events never leave the plugin: they go to the module's
	// hooks (ebpfbase.Dispatcher), which may keep state and Emit events of
	// their own.
	RouteModule
)

func (r Route) String() string {
	switch r {
	case RouteOutput:
		return "output"
	case RouteStream:
		return "stream"
	case RouteModule:
		return "module"
	}
	return "unknown"
}

// Direction is which way data went, seen from the captured process.
type Direction uint8

const (
	DirectionUnknown Direction = iota
	DirectionEgress            // the process wrote or sent
	DirectionIngress           // the process read or received
)

func (d Direction) String() string {
	switch d {
	case DirectionEgress:
		return "egress"
	case DirectionIngress:
		return "ingress"
	}
	return "unknown"
}

// Connection names the connection a record belongs to. The zero value
// means unknown.
type Connection struct {
	// ID is stable for the life of the connection (for TLS, the life of
	// the library's session object) within one module run.
	ID        uint64
	Local     netip.AddrPort
	Remote    netip.AddrPort
	Direction Direction
}

// Known reports whether anything is known about the connection.
func (c Connection) Known() bool {
	return c.ID != 0 || c.Local.IsValid() || c.Remote.IsValid()
}

// Field is a free-form key/value pair an event carries.
type Field struct {
	Key   string
	Value string
}

// Event is one thing a module captured. Modules fill it in Decode; the SDK
// reuses Event values, so nothing may keep a pointer to one after the call
// it was handed to returns.
type Event struct {
	Time   time.Time
	Module string // set by the SDK from Info().Name when empty
	Kind   string // module-defined, e.g. "command", "tls_data"
	PID    uint32 // thread group id (what ps calls PID)
	TID    uint32
	UID    uint32
	Comm   string
	// CgroupID is the cgroup v2 id of the task (0: unknown). The host
	// turns it into a path and a container (sdk/cgroup).
	CgroupID uint64
	// Payload is the captured bytes, of any length: the transport splits
	// large payloads and the host joins them.
	Payload []byte
	Conn    Connection
	Fields  []Field
	Route   Route
}

// Reset clears ev for reuse, keeping the capacity of Payload and Fields.
func (ev *Event) Reset() {
	payload, fields := ev.Payload[:0], ev.Fields[:0]
	*ev = Event{Payload: payload, Fields: fields}
}

// Field returns the value of the field key and whether it is present.
func (ev *Event) Field(key string) (string, bool) {
	for _, f := range ev.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// AddField appends a field.
func (ev *Event) AddField(key, value string) {
	ev.Fields = append(ev.Fields, Field{Key: key, Value: value})
}

// Clone returns a deep copy of ev that the caller may keep.
func (ev *Event) Clone() *Event {
	c := *ev
	c.Payload = append([]byte(nil), ev.Payload...)
	c.Fields = append([]Field(nil), ev.Fields...)
	return &c
}
