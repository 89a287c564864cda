package pgmod

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ecaphost/ecaphost/plugins/postgres/bpf"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

var objects = []struct {
	name string
	obj  []byte
}{
	{"CO-RE", bpf.Core},
	{"non-CO-RE", bpf.NonCore},
}

// TestLayout proves that record, the Go side of struct pg_event, has the
// C layout in both objects, and that the decoder's offsets are right.
func TestLayout(t *testing.T) {
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			if err := ebpfbase.CheckLayout(o.obj, "pg_event", record{}); err != nil {
				t.Error(err)
			}
			if err := ebpfbase.CheckLayout(o.obj, "pg_text", textRecord{}); err != nil {
				t.Error(err)
			}
			if err := ebpfbase.CheckLayout(o.obj, "ecap_hdr", ebpfbase.Header{}); err != nil {
				t.Error(err)
			}
		})
	}
	var r record
	if unsafe.Offsetof(r.DurationNs) != offDuration || unsafe.Offsetof(r.TextID) != offTextID || unsafe.Offsetof(r.TextLen) != offTextLen ||
		unsafe.Offsetof(r.Phase) != offPhase || unsafe.Offsetof(r.ErrLen) != offErrLen ||
		unsafe.Offsetof(r.StmtName) != offStmtName || unsafe.Offsetof(r.Data) != offData {
		t.Errorf("decoder offsets differ from the record's: %+v", r)
	}
	var c textRecord
	if unsafe.Offsetof(c.TextID) != offChunkID || unsafe.Offsetof(c.Offset) != offChunkOffset || unsafe.Offsetof(c.Data) != offChunkData {
		t.Errorf("decoder offsets differ from the chunk's")
	}
}

// TestObjects checks each committed object against the Spec Start uses.
func TestObjects(t *testing.T) {
	m := New()
	m.servers = []server{{path: "/usr/lib/postgresql/15/bin/postgres", major: 15, symbols: []string{
		"pgstat_report_activity", "pg_parse_query", "PortalRun", "PortalRun", "pq_endmessage"}}}
	spec, err := m.Spec()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(o.obj))
			if err != nil {
				t.Fatal(err)
			}
			if err := ebpfbase.CheckObject(spec, cs); err != nil {
				t.Error(err)
			}
		})
	}
}
