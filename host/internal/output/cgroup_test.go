package output

import (
	"strings"
	"testing"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/shared/proto/outputv1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fakeCgroups knows one cgroup, a Kubernetes container's, and counts its
// lookups.
type fakeCgroups struct{ lookups int }

const testCtr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func (f *fakeCgroups) Lookup(id uint64) *cgroup.Identity {
	f.lookups++
	if id != 42 {
		return &cgroup.Identity{ID: id}
	}
	v := cgroup.Parse("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1c7a3e5f_2b4d_4e6f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + testCtr + ".scope")
	v.ID = id
	return &v
}

// TestCgroupInEveryFormat checks that each format carries the cgroup's
// path and container, or the bare id of a cgroup that does not resolve,
// and nothing for an event without one.
func TestCgroupInEveryFormat(t *testing.T) {
	ev := sdk.Event{Time: time.Unix(1, 0), Module: "openssl", Kind: "tls_data", PID: 7, TID: 7, Comm: "curl", CgroupID: 42, Payload: []byte("hi")}
	gone := ev
	gone.CgroupID = 99
	none := ev
	none.CgroupID = 0
	for _, f := range []Format{FormatText, FormatJSON, FormatProtobuf} {
		t.Run(string(f), func(t *testing.T) {
			fc := &fakeCgroups{}
			enc, err := NewEncoder(f, fc)
			if err != nil {
				t.Fatal(err)
			}
			var outs []string
			for _, e := range []*sdk.Event{&ev, &ev, &gone, &none} {
				b, err := enc.Append(nil, e)
				if err != nil {
					t.Fatal(err)
				}
				if f == FormatProtobuf {
					b = protobufText(t, b)
				}
				outs = append(outs, string(b))
			}
			for _, want := range []string{testCtr, "containerd", "1c7a3e5f-2b4d-4e6f-8a9b-0c1d2e3f4a5b", "besteffort", "/kubepods.slice/"} {
				if !strings.Contains(outs[0], want) || outs[0] != outs[1] {
					t.Errorf("first event lacks %q (or the second differs):\n%s", want, outs[0])
				}
			}
			if !strings.Contains(outs[2], "99") || strings.Contains(outs[2], "kubepods") {
				t.Errorf("unresolved cgroup: %s", outs[2])
			}
			if strings.Contains(outs[3], "cgroup") {
				t.Errorf("event without a cgroup mentions one: %s", outs[3])
			}
			if fc.lookups != 2 {
				t.Errorf("%d lookups for 2 distinct cgroups in a row", fc.lookups)
			}
		})
	}
}

// protobufText decodes one delimited outputv1.Event back to its text form.
func protobufText(t *testing.T, b []byte) []byte {
	n, k := protowire.ConsumeVarint(b)
	if k < 0 || int(n) != len(b)-k {
		t.Fatalf("bad framing of %d bytes", len(b))
	}
	var m outputv1.Event
	if err := proto.Unmarshal(b[k:], &m); err != nil {
		t.Fatal(err)
	}
	if m.GetCgroup() == nil {
		return []byte(m.String())
	}
	return []byte(m.String() + " cgroup")
}
