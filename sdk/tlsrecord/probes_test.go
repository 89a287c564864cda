package tlsrecord

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
)

// TestConnProbes: every probe names a program of the modules' objects, in
// the section the probe says.
func TestConnProbes(t *testing.T) {
	for _, rel := range moduleObjects {
		t.Run(rel, func(t *testing.T) {
			cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(repoFile(t, rel)))
			if err != nil {
				t.Fatal(err)
			}
			for _, sock := range []bool{true, false} {
				probes := ConnProbes(sock)
				want := len(Syscalls)
				if sock {
					want = len(SockTracepoints)
				}
				if len(probes) != want {
					t.Errorf("sock=%v: %d probes, want %d", sock, len(probes), want)
				}
				for _, p := range probes {
					ps, ok := cs.Programs[p.Program]
					if !ok || ps.SectionName != p.Section {
						t.Errorf("probe %s in %s: program missing or in another section (%v)", p.Program, p.Section, ps)
					}
				}
			}
		})
	}
	if HaveSockTracepoints("/nonexistent") || !HaveSockTracepoints("/") {
		t.Error("HaveSockTracepoints does not look at its path")
	}
}
