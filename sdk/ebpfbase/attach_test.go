package ebpfbase

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	manager "github.com/gojue/ebpfmanager"

	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
)

func TestPrecheckProbes(t *testing.T) {
	cs := bashSpec(t)
	probe := func(fn, sym, bin string) *manager.Probe {
		return &manager.Probe{Section: "uprobe/" + sym, EbpfFuncName: fn, AttachToFuncName: sym, BinaryPath: bin}
	}
	tests := []struct {
		name    string
		probes  []*manager.Probe
		wantErr error
		want    string
	}{
		{name: "symbol missing", probes: []*manager.Probe{probe("uprobe_rl_newline", "no_such_function", "/bin/bash")},
			wantErr: elfsym.ErrNoSymbol, want: "attaching uprobe no_such_function in /bin/bash (program uprobe_rl_newline)"},
		{name: "binary missing", probes: []*manager.Probe{probe("uprobe_rl_newline", "readline", "/nonexistent/bash")},
			wantErr: fs.ErrNotExist, want: "readline in /nonexistent/bash"},
		{name: "not ELF", probes: []*manager.Probe{probe("uprobe_rl_newline", "readline", "/etc/passwd")},
			wantErr: elfsym.ErrNotELF, want: "readline in /etc/passwd"},
		{name: "program missing", probes: []*manager.Probe{probe("nope", "readline", "/bin/bash")},
			want: `program "nope" is not in the object`},
		{name: "no probes", want: "has none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := precheckProbes(cs, tt.probes, false)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want one wrapping %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if len(tt.probes) > 0 {
				var ae *AttachError
				if !errors.As(err, &ae) || ae.Symbol != tt.probes[0].AttachToFuncName || ae.Binary != tt.probes[0].BinaryPath {
					t.Errorf("error %#v, want an *AttachError naming the symbol and binary", err)
				}
			}
		})
	}
	if err := precheckProbes(cs, nil, true); err != nil {
		t.Errorf("no probes with ProbesLater: %v", err)
	}
}
