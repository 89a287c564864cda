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
}

const execRecordSize = 24

// execSource is the loaded exec tracepoint and its ring buffer.
type execSource struct {
	coll *ebpf.Collection
	tp   link.Link
	rd   *ringbuf.Reader
}

// openExecSource loads kern/sdk/execwatch.c with its cgroup filter and
// attaches it to sched/sched_process_exec.
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
	if err != nil {
		return nil, fmt.Errorf("loading the exec tracepoint: %w", err)
	}
	s := &execSource{coll: coll}
	s.tp, err = link.Tracepoint("sched", "sched_process_exec", coll.Programs["tp_sched_process_exec"], nil)
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attaching tracepoint sched/sched_process_exec: %w", err)
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
