package ebpfbase

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	manager "github.com/gojue/ebpfmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

// Names of the filter globals of kern/include/ecap.h.
const (
	ConstTargetPID  = "target_pid"
	ConstTargetUID  = "target_uid"
	ConstTargetComm = "target_comm"
	// ConstTargetCgroupID and ConstTargetCgroupLevel are the cgroup
	// filter (sdk.Common.CgroupID and CgroupLevel).
	ConstTargetCgroupID    = "target_cgroup_id"
	ConstTargetCgroupLevel = "target_cgroup_level"
)

// ConstWakeupBytes is the global of kern/include/ecap.h batching the ring
// buffer reader's wake-ups.
const ConstWakeupBytes = "ecap_wakeup_bytes"

// pollInterval is how long a ring buffer read waits when wake-ups are
// batched: the most a record below the threshold waits to be read.
const pollInterval = 10 * time.Millisecond

// wakeupBytes returns the wake-up threshold for an object whose event maps
// are all ring buffers and which declares ConstWakeupBytes: 1/16 of the
// smallest ring, between 4 KiB and 1 MiB, so a full ring always wakes
// the reader long before it overflows. A wake-up is paid for by the
// traced program, in whose context the record that crosses the threshold
// is written; under load the reader's pollInterval reads the ring first
// (1 MiB is 14 ms at 70 MB/s, make bench's 1 KiB rate), so the programs
// rarely pay.
func wakeupBytes(cs *ebpf.CollectionSpec, events []string, editors map[string]manager.MapSpecEditor) (uint64, bool) {
	vs, ok := cs.Variables[ConstWakeupBytes]
	if !ok || !vs.Constant() {
		return 0, false
	}
	var smallest uint32
	for _, name := range events {
		ms, ok := cs.Maps[name]
		if !ok || ms.Type != ebpf.RingBuf {
			return 0, false
		}
		size := ms.MaxEntries
		if ed, ok := editors[name]; ok && ed.MaxEntries != 0 {
			size = ed.MaxEntries
		}
		if smallest == 0 || size < smallest {
			smallest = size
		}
	}
	return uint64(min(max(smallest/16, 4<<10), 1<<20)), smallest != 0
}

// commLen is TASK_COMM_LEN: the kernel keeps 15 bytes of a command name
// and a NUL.
const commLen = 16

// constants returns the values of the const volatile globals to set before
// load: the filters of common that are set, and extra. Each is checked
// against the object (present, constant, right size), so a filter the
// bytecode cannot apply is an error, never silently ignored.
func constants(cs *ebpf.CollectionSpec, common sdk.Common, extra map[string]any, logger hclog.Logger) (map[string]any, error) {
	out := map[string]any{}
	if common.PID != 0 {
		out[ConstTargetPID] = common.PID
	}
	if common.UID != 0 {
		out[ConstTargetUID] = common.UID
	}
	if common.Comm != "" {
		var c [commLen]byte
		n := copy(c[:commLen-1], common.Comm)
		if n < len(common.Comm) && logger != nil {
			logger.Warn("comm filter longer than the kernel keeps: only its first bytes are compared",
				"comm", common.Comm, "compared", string(c[:n]))
		}
		out[ConstTargetComm] = c
	}
	if common.CgroupID != 0 {
		out[ConstTargetCgroupID] = common.CgroupID
		out[ConstTargetCgroupLevel] = common.CgroupLevel
	}
	for k, v := range extra {
		out[k] = v
	}
	// Check on a copy: the manager loads its own spec from the object.
	check := cs.Copy()
	for name, v := range out {
		vs, ok := check.Variables[name]
		if !ok {
			what := "constant " + name
			switch name {
			case ConstTargetPID:
				what = "pid filter (constant target_pid)"
			case ConstTargetUID:
				what = "uid filter (constant target_uid)"
			case ConstTargetComm:
				what = "comm filter (constant target_comm)"
			case ConstTargetCgroupID, ConstTargetCgroupLevel:
				what = "cgroup filter (constant " + name + ", kern/include/ecap.h)"
			}
			return nil, fmt.Errorf("setting the %s: the bytecode does not declare it", what)
		}
		if !vs.Constant() {
			return nil, fmt.Errorf("setting constant %s: it is not const volatile in the bytecode", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("setting constant %s: %w", name, err)
		}
	}
	return out, nil
}

// Default sizes of the kernel buffers when buffer_kib is 0.
const defaultPerfBufferBytes = 64 << 10

// mapEditors checks the event and counter maps of the object and returns
// the editors resizing the ring buffers among the event maps to kib KiB
// (rounded up to a power of two of at least a page, as the kernel needs).
func mapEditors(cs *ebpf.CollectionSpec, events []string, lost string, kib uint32) (map[string]manager.MapSpecEditor, error) {
	if len(events) == 0 {
		return nil, errors.New("describing maps: the module reads no event map")
	}
	editors := map[string]manager.MapSpecEditor{}
	for _, name := range events {
		ms, ok := cs.Maps[name]
		if !ok {
			return nil, fmt.Errorf("finding event map %s: not in the object", name)
		}
		switch ms.Type {
		case ebpf.RingBuf:
			if kib != 0 {
				editors[name] = manager.MapSpecEditor{MaxEntries: ringBufferSize(kib), EditorFlag: manager.EditMaxEntries}
			}
		case ebpf.PerfEventArray:
		default:
			return nil, fmt.Errorf("reading event map %s: type %s is neither a ring buffer nor a perf event array", name, ms.Type)
		}
	}
	if lost != "" {
		ms, ok := cs.Maps[lost]
		if !ok {
			return nil, fmt.Errorf("finding counter map %s: not in the object", lost)
		}
		if ms.Type != ebpf.PerCPUArray || ms.ValueSize != 8 {
			return nil, fmt.Errorf("reading counter map %s: want a per-CPU array of 8-byte values, have %s of %d-byte values", lost, ms.Type, ms.ValueSize)
		}
	}
	return editors, nil
}

// checkCounterMaps checks that each counter names a per-CPU array of
// 8-byte values of the object holding its index, and that names are unique.
func checkCounterMaps(cs *ebpf.CollectionSpec, counters []CounterMap) error {
	seen := map[string]bool{CounterReserveFailed: true, CounterPerfLost: true, CounterDecodeErrors: true}
	for _, c := range counters {
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("describing counter %q of map %s: the name is empty or taken", c.Name, c.Map)
		}
		seen[c.Name] = true
		ms, ok := cs.Maps[c.Map]
		if !ok {
			return fmt.Errorf("finding counter map %s: not in the object", c.Map)
		}
		if ms.Type != ebpf.PerCPUArray || ms.ValueSize != 8 {
			return fmt.Errorf("reading counter map %s: want a per-CPU array of 8-byte values, have %s of %d-byte values", c.Map, ms.Type, ms.ValueSize)
		}
		if c.Index >= ms.MaxEntries {
			return fmt.Errorf("reading counter %s: index %d of map %s, which has %d entries", c.Name, c.Index, c.Map, ms.MaxEntries)
		}
	}
	return nil
}

// ringBufferSize is kib KiB rounded up to a power of two and a page.
func ringBufferSize(kib uint32) uint32 {
	size := uint64(kib) << 10
	page := uint64(os.Getpagesize())
	if size < page {
		size = page
	}
	const max = 1 << 30
	if size > max {
		size = max
	}
	p := uint64(1)
	for p < size {
		p <<= 1
	}
	return uint32(p)
}

// perfBufferSize is the per-CPU perf buffer size for kib KiB.
func perfBufferSize(kib uint32) int {
	if kib == 0 {
		return defaultPerfBufferBytes
	}
	return int(ringBufferSize(kib))
}
