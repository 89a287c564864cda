package output

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/shared/proto/outputv1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// protoEncoder writes outputv1.Event messages with the framing of
// protodelim: the message size as a varint, then the message. It reuses
// one message between events.
type protoEncoder struct {
	msg    outputv1.Event
	ts     timestamppb.Timestamp
	conn   outputv1.Connection
	fields []*outputv1.Field
	// payloadBytes backs msg.PayloadBytes (an optional field: a pointer).
	payloadBytes uint64
}

func (e *protoEncoder) append(dst []byte, ev *sdk.Event, cg *cgroupCache) ([]byte, error) {
	m := &e.msg
	m.Time = nil
	if !ev.Time.IsZero() {
		e.ts.Seconds, e.ts.Nanos = ev.Time.Unix(), int32(ev.Time.Nanosecond())
		m.Time = &e.ts
	}
	m.Module = validUTF8(ev.Module)
	m.Kind = validUTF8(ev.Kind)
	m.Pid, m.Tid, m.Uid = ev.PID, ev.TID, ev.UID
	m.Comm = validUTF8(ev.Comm)
	m.Payload = ev.Payload
	m.Cgroup = nil
	if cg != nil {
		m.Cgroup = &cg.pb
	}

	m.Connection = nil
	if c := ev.Conn; c.Known() {
		e.conn.Id = c.ID
		e.conn.LocalIp = appendIP(e.conn.LocalIp[:0], c.Local)
		e.conn.LocalPort = uint32(c.Local.Port())
		e.conn.RemoteIp = appendIP(e.conn.RemoteIp[:0], c.Remote)
		e.conn.RemotePort = uint32(c.Remote.Port())
		e.conn.Direction = outputv1.Direction_DIRECTION_UNSPECIFIED
		switch c.Direction {
		case sdk.DirectionEgress:
			e.conn.Direction = outputv1.Direction_DIRECTION_EGRESS
		case sdk.DirectionIngress:
			e.conn.Direction = outputv1.Direction_DIRECTION_INGRESS
		}
		m.Connection = &e.conn
	}

	m.PayloadBytes = nil
	for len(e.fields) < len(ev.Fields) {
		e.fields = append(e.fields, &outputv1.Field{})
	}
	m.Fields = e.fields[:len(ev.Fields)]
	for i, f := range ev.Fields {
		m.Fields[i].Key, m.Fields[i].Value = validUTF8(f.Key), validUTF8(f.Value)
		if f.Key == fieldPayloadBytes {
			if n, err := strconv.ParseUint(f.Value, 10, 64); err == nil {
				e.payloadBytes = n
				m.PayloadBytes = &e.payloadBytes
			}
		}
	}

	size := proto.Size(m)
	dst = protowire.AppendVarint(dst, uint64(size))
	dst, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, m)
	m.Payload = nil // do not keep the caller's bytes
	return dst, err
}

// appendIP appends the 4 or 16 bytes of the address of a, nothing when a
// is not valid.
func appendIP(dst []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return dst
	}
	if ip := a.Addr(); ip.Is4() {
		b := ip.As4()
		return append(dst, b[:]...)
	}
	b := a.Addr().As16()
	return append(dst, b[:]...)
}

// validUTF8 returns s with invalid UTF-8 replaced by U+FFFD, as proto3
// strings require.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
