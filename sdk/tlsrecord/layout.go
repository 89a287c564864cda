package tlsrecord

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// CheckLayout proves, for a module's test, that Record and ebpfbase.Header
// have the layout of struct tls_data_event and struct ecap_hdr in the
// module's eBPF object obj (through its BTF, see ebpfbase.CheckLayout), and
// that the offsets Decode reads at are Record's. The error names every
// difference found.
func CheckLayout(obj []byte) error {
	var errs []error
	if err := ebpfbase.CheckLayout(obj, "tls_data_event", Record{}); err != nil {
		errs = append(errs, err)
	}
	if err := ebpfbase.CheckLayout(obj, "ecap_hdr", ebpfbase.Header{}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(append(errs, checkOffsets())...)
}

// checkOffsets compares the decoder's offsets with Record's.
func checkOffsets() error {
	var r Record
	var errs []error
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"session", offSession, unsafe.Offsetof(r.Session)},
		{"serial", offSerial, unsafe.Offsetof(r.Serial)},
		{"call_seq", offCallSeq, unsafe.Offsetof(r.CallSeq)},
		{"total", offTotal, unsafe.Offsetof(r.Total)},
		{"offset", offOffset, unsafe.Offsetof(r.Offset)},
		{"fd", offFd, unsafe.Offsetof(r.Fd)},
		{"family", offFamily, unsafe.Offsetof(r.Family)},
		{"lport", offLport, unsafe.Offsetof(r.Lport)},
		{"rport", offRport, unsafe.Offsetof(r.Rport)},
		{"fn", offFn, unsafe.Offsetof(r.Fn)},
		{"dir", offDir, unsafe.Offsetof(r.Dir)},
		{"info", offInfo, unsafe.Offsetof(r.Info)},
		{"laddr", offLaddr, unsafe.Offsetof(r.Laddr)},
		{"raddr", offRaddr, unsafe.Offsetof(r.Raddr)},
		{"data", DataOffset, unsafe.Offsetof(r.Data)},
	} {
		if o.got != o.want {
			errs = append(errs, fmt.Errorf("decoder offset of %s is %d, Record has %d", o.name, o.got, o.want))
		}
	}
	return errors.Join(errs...)
}
