package discover

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/discover/bpf"
)

// execRecord is struct exec_event of kern/sdk/execwatch.c.
type execRecord struct {
	timestampNs uint64
	cgroupID    uint64
	pid         uint32
	kind        uint32 // kindExec or kindDlopen
}

// Kinds of execRecord (EXEC_KIND_*).
const (
	kindExec   = 0
	kindDlopen = 1
)

// Programs of kern/sdk/execwatch.c.
const (
	progExec        = "rtp_sched_process_exec"
	progLoader      = "uprobe_dl_debug_state"
	progLoaderMulti = "uprobe_multi_dl_debug_state"
	// loaderSymbol is the function of the dynamic loader (glibc, musl)
	// called after each change of a process's libraries.
	loaderSymbol = "_dl_debug_state"
)

const execRecordSize = 24

// execSource is the loaded exec tracepoint and its ring buffer, and the
// loader programs.
type execSource struct {
	coll *ebpf.Collection
	tp   link.Link
	rd   *ringbuf.Reader
	// noMulti: the kernel has no uprobe_multi links; loader hooks are
	// perf-event uprobes (guarded by the Watcher's use: one goroutine).
	noMulti bool
}

// openExecSource loads kern/sdk/execwatch.c with its cgroup filter and
// attaches it to the raw tracepoint sched_process_exec.
func openExecSource(cgroupID uint64, level uint32) (*execSource, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(bpf.ExecWatch))
	if err != nil {
		return nil, fmt.Errorf("reading the exec tracepoint's object: %w", err)
	}
	for name, v := range map[string]any{"target_cgroup_id": cgroupID, "target_cgroup_level": level} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("setting %s of the exec tracepoint: not in the object", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("setting %s of the exec tracepoint: %w", name, err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	noMulti := false
	if err != nil {
		// A kernel without uprobe_multi programs: the loader hooks are
		// perf-event uprobes.
		delete(spec.Programs, progLoaderMulti)
		var err2 error
		if coll, err2 = ebpf.NewCollection(spec); err2 != nil {
			return nil, fmt.Errorf("loading the exec tracepoint: %w", err)
		}
		noMulti = true
	}
	s := &execSource{coll: coll, noMulti: noMulti}
	s.tp, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: coll.Programs[progExec]})
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attaching raw tracepoint sched_process_exec: %w", err)
	}
	s.rd, err = ringbuf.NewReader(coll.Maps["exec_events"])
	if err != nil {
		s.tp.Close()
		coll.Close()
		return nil, fmt.Errorf("opening the ring buffer of the exec tracepoint: %w", err)
	}
	return s, nil
}

// read sends every exec to out until the reader is closed, then closes
// out.
func (s *execSource) read(out chan<- execRecord, stop <-chan struct{}) {
	defer close(out)
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		if len(rec.RawSample) < execRecordSize {
			continue
		}
		b := rec.RawSample
		r := execRecord{
			timestampNs: binary.NativeEndian.Uint64(b),
			cgroupID:    binary.NativeEndian.Uint64(b[8:]),
			pid:         binary.NativeEndian.Uint32(b[16:]),
			kind:        binary.NativeEndian.Uint32(b[20:]),
		}
		select {
		case out <- r:
		case <-stop:
			return
		}
	}
}

// lost returns the execs the kernel could not queue, summed over CPUs.
func (s *execSource) lost() uint64 {
	var vals []uint64
	if err := s.coll.Maps["exec_lost"].Lookup(uint32(0), &vals); err != nil {
		return 0
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n
}

// close detaches the tracepoint and frees the object.
func (s *execSource) close() {
	_ = s.rd.Close()
	_ = s.tp.Close()
	s.coll.Close()
}

// hookLoader attaches the loader program to _dl_debug_state of the
// dynamic loader at path: a uprobe_multi link where the kernel has them
// (cheap to detach), else a perf-event uprobe.
func (s *execSource) hookLoader(path string) (link.Link, error) {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, err
	}
	if !s.noMulti {
		l, err := ex.UprobeMulti([]string{loaderSymbol}, s.coll.Programs[progLoaderMulti], nil)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return l, err
		}
		s.noMulti = true
	}
	return ex.Uprobe(loaderSymbol, s.coll.Programs[progLoader], nil)
}
