package opensslmod

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// libsslSonames are the libssl versions the module supports, as the loader
// names them.
var libsslSonames = []string{"libssl.so.3", "libssl.so.1.1"}

// extraLibDirs are searched for libsslSonames besides the loader's cache
// and libfind.Dirs: where OpenSSL's own `make install` puts it.
var extraLibDirs = []string{"/usr/local/ssl/lib"}

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// isLibssl tells a libssl.so file in a process's mappings.
var isLibssl = libfind.Soname("libssl.so")

// discoverLibssl finds the libssl files to probe: with a pid filter, those
// the process maps (or its executable when it carries OpenSSL itself);
// otherwise those the loader knows (ldconfig -p) and those in the usual
// library directories.
func discoverLibssl(pid uint32) ([]string, error) {
	if pid != 0 {
		return libsslOfProcess(pid)
	}
	found := libfind.Loader(libsslSonames, extraLibDirs...)
	if len(found) == 0 {
		return nil, fmt.Errorf("neither the loader cache (ldconfig -p) nor %s hold %s",
			strings.Join(slices.Concat(libfind.Dirs, extraLibDirs), ", "), strings.Join(libsslSonames, " or "))
	}
	return found, nil
}

// parseLdconfig returns the paths of the supported libssl sonames in the
// output of `ldconfig -p`.
func parseLdconfig(out []byte) []string { return libfind.ParseLdconfig(out, libsslSonames) }

// libsslOfProcess returns the libssl files process pid maps, or its
// executable if it maps none but defines SSL_write (OpenSSL linked
// statically). Paths are seen from the process's root: a process in
// another mount namespace (a container) gets /proc/PID/root/... paths.
func libsslOfProcess(pid uint32) ([]string, error) {
	out, err := libfind.Mapped(procDir, pid, isLibssl)
	if err != nil || len(out) > 0 {
		return out, err
	}
	exe := libfind.Exe(procDir, pid)
	if err := elfsym.CheckSymbol(exe, symWrite); err == nil {
		return []string{exe}, nil
	}
	return nil, fmt.Errorf("process %d maps no libssl.so and its executable does not define %s", pid, symWrite)
}
