package ebpfbase

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header is the Go twin of struct ecap_hdr (kern/include/ecap.h), which
// starts every record of a module built with ecap.h. Its layout is checked
// against the C one through the objects' BTF (see CheckLayout).
type Header struct {
	TimestampNs uint64   // bpf_ktime_get_ns: see KtimeToTime
	PID         uint32   // thread group id
	TID         uint32   // thread id
	UID         uint32   // uid
	Kind        uint32   // module-defined record kind
	Len         uint32   // bytes of variable data after the fixed fields
	Flags       uint32   // module-defined
	Comm        [16]byte // NUL-terminated command name
	CgroupID    uint64   // cgroup v2 id of the task (bpf_get_current_cgroup_id)
}

// HeaderSize is the size of struct ecap_hdr.
const HeaderSize = 56

// ErrShortRecord is wrapped by decoders for a record shorter than its
// fixed fields or than the length it announces.
var ErrShortRecord = errors.New("short record")

// DecodeHeader decodes the ecap_hdr at the start of raw, in the host's
// byte order (the kernel's). It fails with ErrShortRecord when raw is
// shorter than HeaderSize; it does not check Len.
func DecodeHeader(raw []byte) (Header, error) {
	var h Header
	if len(raw) < HeaderSize {
		return h, fmt.Errorf("decoding record header: %d bytes, want %d: %w", len(raw), HeaderSize, ErrShortRecord)
	}
	bo := binary.NativeEndian
	h.TimestampNs = bo.Uint64(raw[0:])
	h.PID = bo.Uint32(raw[8:])
	h.TID = bo.Uint32(raw[12:])
	h.UID = bo.Uint32(raw[16:])
	h.Kind = bo.Uint32(raw[20:])
	h.Len = bo.Uint32(raw[24:])
	h.Flags = bo.Uint32(raw[28:])
	copy(h.Comm[:], raw[32:48])
	h.CgroupID = bo.Uint64(raw[48:])
	return h, nil
}
