// Package ebpfbase is the base of eBPF capture modules: the part of
// sdk.Module every module shares, built on gojue/ebpfmanager and
// cilium/ebpf. It is eCapture's base Module cut for one module per plugin,
// taken by composition: a module does not embed it, it hands New its
// Hooks - Info, Init (checking its config), Spec (its bytecode, probes and
// maps) and Decode - and serves what New returns. Optional interfaces add
// Dispatch (events routed to the module), Lifecycle (work around Start, Run
// and Close) and sdk.ProbeLister. Module does the rest:
//
//   - Start mounts tracefs when a probe is a tracepoint and it is not
//     mounted. It picks the object: the CO-RE one when the kernel has BTF at
//     /sys/kernel/btf/vmlinux or the btf_file setting names a BTF file
//     (loaded as the kernel types), the non-CO-RE one otherwise, and fails
//     with ErrNoBTF, saying to set btf_file, when there is neither. It sets
//     the const volatile filters target_pid, target_uid and target_comm of
//     kern/include/ecap.h from the common settings (an object lacking one
//     that is set is an error, not a silently unfiltered capture), resizes
//     the ring buffers to buffer_kib, loads, attaches, and checks every
//     probe: ebpfmanager ignores attach errors, Start returns an
//     *AttachError naming the symbol and the binary. The uprobes are
//     ebpfbase's own (uprobes.go): one uprobe_multi link per program and
//     file where the kernel has them (6.6+), perf-event uprobes
//     otherwise, because the kernel detaches the latter one at a time
//     after a grace period each, too slow for a stop within the host's
//     bound once node-wide discovery probes many files. A module that
//     finds its own files attaches them with Object.AttachUprobes, and
//     may start with none (Spec.ProbesLater); one that attaches probes of
//     its own for a while (openssl's key-mode fallback) finds the files
//     node-wide discovery probes with Object.FoundFiles and attaches to
//     them with Object.AttachFoundUprobes.
//   - Run reads every event map - ring buffers with ringbuf.Reader, perf
//     event arrays (kernels without ring buffers) with perf.Reader - into
//     reused records, decodes each into one reused sdk.Event with the
//     Hooks' Decode and routes it: RouteModule events to Dispatch, the
//     others to the sink. Every 500ms and at the end it reports the loss counters
//     ringbuf_reserve_failed (the per-CPU ecap_lost map), perf_lost and
//     decode_errors, and the module's own per-CPU counters named in
//     Spec.Counters (e.g. records a module had to cut short). A malformed
//     record is counted and logged (rate limited), never fatal.
//   - Stop makes Run return once what is readable has been delivered;
//     Close detaches every probe, side by side, and frees the maps.
//
// Helpers for decoders: DecodeHeader and a Stamper (FillEvent) for the
// common record header (struct ecap_hdr), KtimeToTime for bpf_ktime_get_ns
// timestamps. In tests, CheckObject proves a Spec matches its object and
// CheckLayout a Go record struct its C twin, through the object's BTF.
//
// A minimal module:
//
//	//go:embed bpf/hello_kern_core.o
//	var core []byte
//
//	type hello struct{ stamp ebpfbase.Stamper }
//
//	func main() { sdk.Serve(ebpfbase.New(&hello{})) }
//
//	func (*hello) Info() sdk.Info { return sdk.Info{Name: "hello", Version: "0.1.0"} }
//
//	func (*hello) Init(context.Context, hclog.Logger, sdk.Settings, sdk.Sink) error { return nil }
//
//	func (*hello) Spec() (*ebpfbase.Spec, error) {
//		return &ebpfbase.Spec{
//			CoreObject:     core,
//			Probes:         []ebpfbase.Probe{{Section: "uprobe/hello", Program: "uprobe_hello", Symbol: "hello", Binary: "/usr/bin/hello"}},
//			LostCounterMap: ebpfbase.LostMap,
//		}, nil
//	}
//
//	func (m *hello) Decode(_ string, raw []byte, ev *sdk.Event) error {
//		h, err := ebpfbase.DecodeHeader(raw)
//		if err != nil {
//			return err
//		}
//		m.stamp.FillEvent(&h, ev)
//		ev.Kind = "hello"
//		return nil
//	}
//
// plugins/bash is a complete example.
package ebpfbase
