package ebpfbase

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	manager "github.com/gojue/ebpfmanager"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestConstants(t *testing.T) {
	cs := bashSpec(t)
	var comm16 [16]byte
	copy(comm16[:], "a-very-long-nam") // 15 bytes kept
	var bash [16]byte
	copy(bash[:], "bash")

	tests := []struct {
		name    string
		common  sdk.Common
		extra   map[string]any
		want    map[string]any
		wantErr string
	}{
		{name: "no filter", want: map[string]any{}},
		{name: "pid uid comm", common: sdk.Common{PID: 42, UID: 1000, Comm: "bash"},
			want: map[string]any{ConstTargetPID: uint32(42), ConstTargetUID: uint32(1000), ConstTargetComm: bash}},
		{name: "comm truncated to 15 bytes", common: sdk.Common{Comm: "a-very-long-name-indeed"},
			want: map[string]any{ConstTargetComm: comm16}},
		{name: "extra constant", extra: map[string]any{ConstTargetPID: uint32(7)},
			want: map[string]any{ConstTargetPID: uint32(7)}},
		{name: "extra constant missing", extra: map[string]any{"nope": uint32(1)}, wantErr: "constant nope: the bytecode does not declare it"},
		{name: "extra constant of the wrong size", extra: map[string]any{ConstTargetPID: uint64(1)}, wantErr: "setting constant target_pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := constants(cs, tt.common, tt.extra, hclog.NewNullLogger())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("constants %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v (%T), want %v (%T)", k, got[k], got[k], v, v)
				}
			}
		})
	}
	// The spec itself is left alone: the manager loads its own copy.
	var pid uint32
	if err := cs.Variables[ConstTargetPID].Get(&pid); err != nil || pid != 0 {
		t.Errorf("target_pid of the spec is %d (%v), want it untouched", pid, err)
	}
}

func TestConstantsMissingFilter(t *testing.T) {
	cs := bashSpec(t).Copy()
	delete(cs.Variables, ConstTargetUID)
	_, err := constants(cs, sdk.Common{UID: 1}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "uid filter") {
		t.Fatalf("error %v, want one naming the uid filter", err)
	}
}

func TestMapEditors(t *testing.T) {
	cs := bashSpec(t)
	tests := []struct {
		name    string
		events  []string
		lost    string
		kib     uint32
		want    map[string]manager.MapSpecEditor
		wantErr string
	}{
		{name: "default size", events: []string{EventsMap}, lost: LostMap, want: map[string]manager.MapSpecEditor{}},
		{name: "resized", events: []string{EventsMap}, lost: LostMap, kib: 1000,
			want: map[string]manager.MapSpecEditor{EventsMap: {MaxEntries: 1 << 20, EditorFlag: manager.EditMaxEntries}}},
		{name: "missing event map", events: []string{"nope"}, wantErr: "event map nope: not in the object"},
		{name: "event map of the wrong type", events: []string{"shell_pending"}, wantErr: "neither a ring buffer nor a perf event array"},
		{name: "counter map of the wrong type", events: []string{EventsMap}, lost: "shell_pending", wantErr: "want a per-CPU array"},
		{name: "no event map", wantErr: "reads no event map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapEditors(cs, tt.events, tt.lost, tt.kib)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("editors %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k].MaxEntries != v.MaxEntries || got[k].EditorFlag != v.EditorFlag {
					t.Errorf("editor %s = %+v, want %+v", k, got[k], v)
				}
			}
		})
	}
	if cs.Maps[EventsMap].Type != ebpf.RingBuf {
		t.Errorf("%s of the CO-RE object is a %s, want a ring buffer", EventsMap, cs.Maps[EventsMap].Type)
	}
}

// TestWakeupBytes checks the wake-up threshold: 1/16 of the ring, at
// least 4 KiB, at most 1 MiB, and none for an event map that is not a ring.
func TestWakeupBytes(t *testing.T) {
	cs := bashSpec(t)
	def := uint64(cs.Maps[EventsMap].MaxEntries / 16)
	for _, tt := range []struct {
		name  string
		bytes uint32 // ring size set by an editor; 0: the object's
		want  uint64
	}{
		{"object's size", 0, min(max(def, 4<<10), 1<<20)},
		{"16 MiB", 16 << 20, 1 << 20},
		{"1 MiB", 1 << 20, 64 << 10},
		{"64 MiB, capped", 64 << 20, 1 << 20},
		{"32 KiB, floored", 32 << 10, 4 << 10},
	} {
		editors := map[string]manager.MapSpecEditor{}
		if tt.bytes != 0 {
			editors[EventsMap] = manager.MapSpecEditor{MaxEntries: tt.bytes, EditorFlag: manager.EditMaxEntries}
		}
		got, ok := wakeupBytes(cs, []string{EventsMap}, editors)
		if !ok || got != tt.want {
			t.Errorf("%s: wakeupBytes = %d, %v; want %d, true", tt.name, got, ok, tt.want)
		}
	}
	if got, ok := wakeupBytes(cs, []string{"shell_pending"}, nil); ok {
		t.Errorf("wakeupBytes of a hash map = %d, true; want false", got)
	}
}

func TestRingBufferSize(t *testing.T) {
	for _, tt := range []struct{ kib, want uint32 }{
		{1, 4096}, {4, 4096}, {5, 8192}, {256, 256 << 10}, {300, 512 << 10}, {1 << 22, 1 << 30},
	} {
		if got := ringBufferSize(tt.kib); got != tt.want {
			t.Errorf("ringBufferSize(%d) = %d, want %d", tt.kib, got, tt.want)
		}
	}
}

func TestCheckCounterMaps(t *testing.T) {
	cs := bashSpec(t)
	tests := []struct {
		name     string
		counters []CounterMap
		wantErr  string
	}{
		{name: "none"},
		{name: "per-CPU array", counters: []CounterMap{{Name: "extra", Map: LostMap}}},
		{name: "missing map", counters: []CounterMap{{Name: "extra", Map: "nope"}}, wantErr: "counter map nope: not in the object"},
		{name: "wrong type", counters: []CounterMap{{Name: "extra", Map: "shell_pending"}}, wantErr: "want a per-CPU array"},
		{name: "index out of range", counters: []CounterMap{{Name: "extra", Map: LostMap, Index: 1}}, wantErr: "index 1 of map ecap_lost, which has 1 entries"},
		{name: "empty name", counters: []CounterMap{{Map: LostMap}}, wantErr: "name is empty or taken"},
		{name: "name of a built-in counter", counters: []CounterMap{{Name: CounterDecodeErrors, Map: LostMap}}, wantErr: "name is empty or taken"},
		{name: "name twice", counters: []CounterMap{{Name: "x", Map: LostMap}, {Name: "x", Map: LostMap}}, wantErr: "name is empty or taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCounterMaps(cs, tt.counters)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}
