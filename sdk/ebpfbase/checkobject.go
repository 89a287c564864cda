package ebpfbase

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// CheckObject reports what Start needs of the object cs that it lacks,
// for spec: a program for every probe, in the section the probe names, no
// probe declared twice; the filter constants and spec's constants, as
// const globals; the event maps; the lost-counter map and the counters'
// maps as per-CPU arrays of 64-bit values with room for every index.
// Modules call it from their tests on their committed objects, so a
// mismatch between Go and C fails there and not at a user's Start.
func CheckObject(spec *Spec, cs *ebpf.CollectionSpec) error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range spec.Probes {
		ps, ok := cs.Programs[p.Program]
		if !ok {
			errs = append(errs, fmt.Errorf("program %s missing", p.Program))
			continue
		}
		if ps.SectionName != p.Section {
			errs = append(errs, fmt.Errorf("program %s is in section %s, the probe says %s", p.Program, ps.SectionName, p.Section))
		}
		id := p.Program + "/" + p.ID
		if seen[id] {
			errs = append(errs, fmt.Errorf("probe %s declared twice", id))
		}
		seen[id] = true
	}
	consts := []string{ConstTargetPID, ConstTargetUID, ConstTargetComm}
	for name := range spec.Constants {
		consts = append(consts, name)
	}
	for _, name := range consts {
		if vs, ok := cs.Variables[name]; !ok || !vs.Constant() {
			errs = append(errs, fmt.Errorf("constant %s missing or not const", name))
		}
	}
	events := spec.EventMaps
	if events == nil {
		events = []string{EventsMap}
	}
	for _, name := range events {
		if em := cs.Maps[name]; em == nil || (em.Type != ebpf.RingBuf && em.Type != ebpf.PerfEventArray) {
			errs = append(errs, fmt.Errorf("event map %s is %v, want a ring buffer or perf event array", name, em))
		}
	}
	perCPU64 := func(m *ebpf.MapSpec) bool { return m != nil && m.Type == ebpf.PerCPUArray && m.ValueSize == 8 }
	if spec.LostCounterMap != "" && !perCPU64(cs.Maps[spec.LostCounterMap]) {
		errs = append(errs, fmt.Errorf("map %s missing or not a per-CPU array of 64-bit values", spec.LostCounterMap))
	}
	for _, c := range spec.Counters {
		if m := cs.Maps[c.Map]; !perCPU64(m) || c.Index >= m.MaxEntries {
			errs = append(errs, fmt.Errorf("counter %+v outside map %v", c, m))
		}
	}
	return errors.Join(errs...)
}
