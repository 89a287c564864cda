package nsprmod

import (
	"fmt"
	"strings"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/libfind"
)

// nsprSonames is NSPR as the loader names it.
var nsprSonames = []string{"libnspr4.so"}

// procDir is /proc; a variable so tests can point it at a fake one.
var procDir = "/proc"

// mayHoldNSPR tells, in a process's mappings, libnspr4.so and libnss3.so:
// Mozilla's own builds of Firefox and Thunderbird fold NSPR into
// libnss3.so, which then defines PR_Write.
var mayHoldNSPR = libfind.Soname("libnspr4.so", "libnss3.so")

// discoverNSPR finds the files to probe: with a pid filter, what the
// process maps (or its executable when NSPR is linked in); otherwise every
// libnspr4.so the loader knows (ldconfig -p) or the usual library
// directories hold.
func discoverNSPR(pid uint32) ([]string, error) {
	if pid != 0 {
		return nsprOfProcess(pid)
	}
	found := libfind.Loader(nsprSonames)
	if len(found) == 0 {
		return nil, fmt.Errorf("neither the loader cache (ldconfig -p) nor %s hold %s",
			strings.Join(libfind.Dirs, ", "), strings.Join(nsprSonames, " or "))
	}
	return found, nil
}

// nsprOfProcess returns the files process pid maps that define PR_Write
// (libnspr4.so, or a libnss3.so NSPR is folded into), or its executable if
// none does but it defines PR_Write itself. Paths are seen from the
// process's root (/proc/PID/root/... for a process in a container).
func nsprOfProcess(pid uint32) ([]string, error) {
	mapped, err := libfind.Mapped(procDir, pid, mayHoldNSPR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range mapped {
		if elfsym.CheckSymbol(p, symWrite) == nil {
			out = append(out, p)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if exe := libfind.Exe(procDir, pid); elfsym.CheckSymbol(exe, symWrite) == nil {
		return []string{exe}, nil
	}
	return nil, fmt.Errorf("process %d maps no libnspr4.so (nor a libnss3.so defining %s) and its executable does not define %s",
		pid, symWrite, symWrite)
}
