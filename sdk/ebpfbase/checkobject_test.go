package ebpfbase

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestCheckObjectFindsMismatches: each way a spec can disagree with its
// object is named.
func TestCheckObjectFindsMismatches(t *testing.T) {
	cs := &ebpf.CollectionSpec{
		Programs: map[string]*ebpf.ProgramSpec{
			"uprobe_a": {SectionName: "uprobe/a"},
			"uprobe_b": {SectionName: "uprobe/b"},
		},
		Maps: map[string]*ebpf.MapSpec{
			EventsMap: {Type: ebpf.RingBuf},
			LostMap:   {Type: ebpf.PerCPUArray, ValueSize: 8, MaxEntries: 1},
			"stats":   {Type: ebpf.PerCPUArray, ValueSize: 8, MaxEntries: 2},
		},
		Variables: map[string]*ebpf.VariableSpec{},
	}
	spec := &Spec{
		Probes: []Probe{
			{Program: "uprobe_a", ID: "x", Section: "uprobe/a"},
			{Program: "uprobe_a", ID: "x", Section: "uprobe/a"},
			{Program: "uprobe_b", Section: "uprobe/other"},
			{Program: "uprobe_gone", Section: "uprobe/gone"},
		},
		LostCounterMap: LostMap,
		Constants:      map[string]any{"my_const": uint32(1)},
		Counters:       []CounterMap{{Name: "ok", Map: "stats", Index: 1}, {Name: "bad", Map: "stats", Index: 2}},
	}
	err := CheckObject(spec, cs)
	if err == nil {
		t.Fatal("no error for a mismatched object")
	}
	for _, want := range []string{
		"probe uprobe_a/x declared twice",
		"program uprobe_b is in section uprobe/b, the probe says uprobe/other",
		"program uprobe_gone missing",
		"constant " + ConstTargetPID + " missing",
		"constant my_const missing",
		"counter {Name:bad",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "Name:ok") || strings.Contains(err.Error(), "event map") || strings.Contains(err.Error(), "map "+LostMap) {
		t.Errorf("error names what is fine:\n%v", err)
	}
}
