package bashmod

import (
	"github.com/ecaphost/ecaphost/sdk"
)

// lineMax is SHELL_LINE_MAX of kern/bash_kern.c.
const lineMax = 1024

// Decode decodes a record of kern/bash_kern.c (struct shell_event of
// kern/include/shellrec.h) into ev: a command line or its exit status
// (sdk/shellrec). It never panics: a short or inconsistent record is an
// error wrapping ebpfbase.ErrShortRecord or shellrec.ErrBadRecord.
func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error { return m.dec.Decode(raw, ev) }
