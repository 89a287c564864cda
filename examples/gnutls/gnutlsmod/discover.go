package gnutlsmod

import (
	"fmt"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// soname is the GnuTLS library the module supports, as the loader names it
// (GnuTLS 3.x).
const soname = "libgnutls.so.30"

// isLibgnutls accepts the base names of libgnutls files in a process's
// mappings (libgnutls.so.30, libgnutls.so.30.34.3), not GnuTLS's other
// libraries (libgnutls-dane, libgnutlsxx...).
var isLibgnutls = libfind.Soname("libgnutls.so")

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// discoverLibgnutls finds the libraries to probe: with a pid filter, the
// libgnutls files the process maps; otherwise those the loader knows
// (ldconfig -p) and those in the usual directories, each file once.
func discoverLibgnutls(pid uint32) ([]string, error) {
	if pid != 0 {
		found, err := libfind.Mapped(procDir, pid, isLibgnutls)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("process %d maps no libgnutls.so", pid)
		}
		return found, nil
	}
	found := libfind.Loader([]string{soname})
	if len(found) == 0 {
		return nil, fmt.Errorf("neither the loader cache (ldconfig -p) nor %s hold %s", strings.Join(libfind.Dirs, ", "), soname)
	}
	return found, nil
}
