package ebpfbase

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
)

func bashProbes(bin string) []Probe {
	return []Probe{
		{Section: "uprobe/rl_newline", Program: "uprobe_rl_newline", Symbol: "rl_newline", Binary: bin},
		{Section: "uprobe/parse_command", Program: "uprobe_parse_command", Symbol: "parse_command", Binary: bin},
	}
}

func startBash(t *testing.T, probes []Probe, common sdk.Common) (*testChild, error) {
	t.Helper()
	c := newTestChild()
	c.h.decode = decodeTestRecord
	c.h.spec = &Spec{CoreObject: bashObject(t), Probes: probes, LostCounterMap: LostMap}
	if err := c.Init(t.Context(), nil, sdk.Settings{Common: common}, &fakeSink{}); err != nil {
		t.Fatal(err)
	}
	err := c.Start()
	t.Cleanup(func() { _ = c.Close() })
	return c, err
}

// TestStartAttachesAndCloseDetaches loads the bash object on /bin/bash
// with every filter set, checks each probe runs, and that Close frees the
// programs (a program still attached could not be freed).
func TestStartAttachesAndCloseDetaches(t *testing.T) {
	harness.RequirePrivileges(t)
	c, err := startBash(t, bashProbes("/bin/bash"), sdk.Common{PID: 1, UID: 1000, Comm: "bash", BufferKiB: 64})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !c.CORE() {
		t.Error("CO-RE object not chosen on a kernel with BTF")
	}
	if len(c.specUprobes) != 2 || len(c.Probes()) != 2 {
		t.Errorf("%d uprobes attached, %d listed, want 2", len(c.specUprobes), len(c.Probes()))
	}
	if !c.uprobes.multi() {
		t.Error("the uprobes are not uprobe_multi links on a kernel that has them (6.6+)")
	}
	var ids []ebpf.ProgramID
	for _, p := range c.uprobes.coll.Programs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	if got := c.loadedMap(EventsMap).MaxEntries(); got != 64<<10 {
		t.Errorf("ring buffer of %d bytes, want the 64 KiB of buffer_kib", got)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The kernel frees a program a grace period after its last link
	// (uprobe_multi links are released through RCU tasks trace).
	deadline := time.Now().Add(3 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Errorf("program %d still exists 3 s after Close", id)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestAttachErrorNamesSymbolAndBinary: a uprobe on a binary lacking the
// symbol is refused before anything is loaded.
func TestAttachErrorNamesSymbolAndBinary(t *testing.T) {
	harness.RequirePrivileges(t)
	probes := bashProbes("/bin/bash")
	probes[1].Binary = "/bin/true" // no parse_command there
	_, err := startBash(t, probes, sdk.Common{})
	var ae *AttachError
	if !errors.As(err, &ae) {
		t.Fatalf("Start: %v, want an *AttachError", err)
	}
	if ae.Symbol != "parse_command" || ae.Binary != "/bin/true" {
		t.Errorf("AttachError names %s in %s", ae.Symbol, ae.Binary)
	}
	if !strings.Contains(err.Error(), "parse_command in /bin/true") {
		t.Errorf("error %q does not name the symbol and binary", err)
	}
}

// TestAttachErrorAfterManagerStart: an attach failure the precheck cannot
// see (an offset past the end of the file) is swallowed by ebpfmanager's
// Start; Start still reports it, naming the symbol and binary.
func TestAttachErrorAfterManagerStart(t *testing.T) {
	harness.RequirePrivileges(t)
	probes := bashProbes("/bin/bash")
	probes[0].Offset = 1 << 40
	_, err := startBash(t, probes, sdk.Common{})
	var ae *AttachError
	if !errors.As(err, &ae) {
		t.Fatalf("Start: %v, want an *AttachError", err)
	}
	if ae.Symbol != "rl_newline" || ae.Binary != "/bin/bash" || ae.Program != "uprobe_rl_newline" {
		t.Errorf("AttachError %+v", ae)
	}
	t.Logf("reported: %v", err)
}

// TestNoBTFWithoutNonCoreObject: without kernel BTF, btf_file or a
// non-CO-RE object, Start refuses and says how to fix it.
func TestNoBTFWithoutNonCoreObject(t *testing.T) {
	harness.RequirePrivileges(t)
	old := systemBTFPath
	systemBTFPath = "/nonexistent/vmlinux"
	defer func() { systemBTFPath = old }()
	_, err := startBash(t, bashProbes("/bin/bash"), sdk.Common{})
	if !errors.Is(err, ErrNoBTF) || !strings.Contains(err.Error(), "btf_file") {
		t.Errorf("Start: %v, want ErrNoBTF telling to set btf_file", err)
	}
}

// TestBTFFile loads the CO-RE object with the btf_file setting.
func TestBTFFile(t *testing.T) {
	harness.RequirePrivileges(t)
	old := systemBTFPath
	systemBTFPath = "/nonexistent/vmlinux"
	defer func() { systemBTFPath = old }()
	c, err := startBash(t, bashProbes("/bin/bash"), sdk.Common{BTFFile: "/sys/kernel/btf/vmlinux"})
	if err != nil {
		t.Fatalf("Start with btf_file: %v", err)
	}
	if !c.CORE() {
		t.Error("btf_file set but the CO-RE object was not chosen")
	}
}

// TestCountersReported: a Spec.Counters entry is read from the loaded map
// and reported by Run under its name, beside the built-in counters.
func TestCountersReported(t *testing.T) {
	harness.RequirePrivileges(t)
	c := newTestChild()
	c.h.decode = decodeTestRecord
	c.h.spec = &Spec{CoreObject: bashObject(t), Probes: bashProbes("/bin/bash"), LostCounterMap: LostMap,
		Counters: []CounterMap{{Name: "extra_lost", Map: LostMap}}}
	sink := &fakeSink{}
	if err := c.Init(t.Context(), nil, sdk.Settings{}, sink); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatalf("counting CPUs: %v", err)
	}
	vals := make([]uint64, n)
	vals[0] = 7
	if err := c.loadedMap(LostMap).Put(uint32(0), vals); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	_ = c.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	_, counters := sink.snapshot()
	if counters["extra_lost"] != 7 || counters[CounterReserveFailed] != 7 {
		t.Errorf("counters %v, want extra_lost and %s at 7", counters, CounterReserveFailed)
	}
}
