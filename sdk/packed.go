package sdk

import (
	"net/netip"

	"github.com/ecaphost/ecaphost/sdk/internal/wire"
)

// appendPacked appends ev with payload (all of ev.Payload, or the piece f
// says) to b, as a packed record of module API version 2 (layout in
// sdk/internal/wire); its cgroup id only when cgroup is set (a host
// speaking module API version 3 or later).
func appendPacked(b []byte, ev *Event, payload []byte, f *wire.Fragment, cgroup bool) []byte {
	var flags byte
	cgroup = cgroup && ev.CgroupID != 0
	if cgroup {
		flags |= wire.FlagCgroup
	}
	if ev.Conn.Known() || ev.Conn.Direction != DirectionUnknown {
		flags |= wire.FlagConn
	}
	if f != nil {
		flags |= wire.FlagFragment
		if f.Last {
			flags |= wire.FlagFragmentLast
		}
	}
	kind, comm := clip16(ev.Kind), clip16(ev.Comm)
	la, ra := ev.Conn.Local.Addr(), ev.Conn.Remote.Addr()
	start := len(b)
	b = wire.LE.AppendUint32(b, 0) // length, set below
	b = append(b, flags, byte(ev.Route), byte(ev.Conn.Direction), addrLen(la))
	b = wire.LE.AppendUint64(b, uint64(ev.Time.UnixNano()))
	b = wire.LE.AppendUint32(b, ev.PID)
	b = wire.LE.AppendUint32(b, ev.TID)
	b = wire.LE.AppendUint32(b, ev.UID)
	b = wire.LE.AppendUint16(b, uint16(len(kind)))
	b = wire.LE.AppendUint16(b, uint16(len(comm)))
	b = wire.LE.AppendUint16(b, ev.Conn.Local.Port())
	b = wire.LE.AppendUint16(b, ev.Conn.Remote.Port())
	nf := min(len(ev.Fields), 0xffff)
	b = wire.LE.AppendUint16(b, uint16(nf))
	b = append(b, addrLen(ra), 0)
	b = wire.LE.AppendUint64(b, ev.Conn.ID)
	b = wire.LE.AppendUint32(b, uint32(len(payload)))
	b = wire.LE.AppendUint32(b, 0)
	if f != nil {
		b = wire.LE.AppendUint64(b, f.RecordID)
		b = wire.LE.AppendUint32(b, f.Index)
		b = wire.LE.AppendUint32(b, 0)
		b = wire.LE.AppendUint64(b, f.Total)
	}
	if cgroup {
		b = wire.LE.AppendUint64(b, ev.CgroupID)
	}
	b = append(b, kind...)
	b = append(b, comm...)
	b = wire.AppendAddr(b, la)
	b = wire.AppendAddr(b, ra)
	for _, fl := range ev.Fields[:nf] {
		k := clip16(fl.Key)
		b = wire.LE.AppendUint16(b, uint16(len(k)))
		b = wire.LE.AppendUint32(b, uint32(len(fl.Value)))
		b = append(b, k...)
		b = append(b, fl.Value...)
	}
	b = append(b, payload...)
	wire.LE.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// clip16 cuts s to what a 16-bit length can say. Kinds, command names and
// field keys are short; this only bounds a broken moduwire.LE.
func clip16(s string) string {
	if len(s) > 0xffff {
		return s[:0xffff]
	}
	return s
}

func addrLen(a netip.Addr) byte {
	switch {
	case !a.IsValid():
		return 0
	case a.Is4():
		return 4
	}
	return 16
}
