package tlsrecord

import (
	"os"

	manager "github.com/gojue/ebpfmanager"
)

// The probes of tls.h tying a session to its socket: a socket's I/O by a
// thread inside a library call is the I/O of that call's session.
var (
	// SockTracepoints are the raw tracepoints used where the kernel has
	// them (Linux 6.3+): they fire only for socket I/O. Programs
	// rtp_<name>, sections raw_tracepoint/<name>.
	SockTracepoints = []string{"sock_send_length", "sock_recv_length"}
	// Syscalls are the fallback: the tracepoints syscalls/sys_enter_<name>
	// (programs tp_sys_enter_<name>), which slow every syscall of every
	// task while attached.
	Syscalls = []string{"read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg"}
)

// SockTracepointPath is where tracefs shows the first of SockTracepoints
// when the kernel has it.
const SockTracepointPath = "/sys/kernel/tracing/events/sock/sock_send_length"

// HaveSockTracepoints reports whether the kernel has SockTracepoints, by
// looking for path (SockTracepointPath but in tests) in tracefs.
func HaveSockTracepoints(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ConnProbes returns new probes of the socket programs tls.h defines: the
// SockTracepoints when sock is set, else the Syscalls tracepoints (which
// need tracefs mounted: see ebpfbase.EnsureTracefs).
func ConnProbes(sock bool) []*manager.Probe {
	var probes []*manager.Probe
	if sock {
		for _, tp := range SockTracepoints {
			probes = append(probes, &manager.Probe{Section: "raw_tracepoint/" + tp, EbpfFuncName: "rtp_" + tp})
		}
		return probes
	}
	for _, sc := range Syscalls {
		probes = append(probes, &manager.Probe{Section: "tracepoint/syscalls/sys_enter_" + sc, EbpfFuncName: "tp_sys_enter_" + sc})
	}
	return probes
}
