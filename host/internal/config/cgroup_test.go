package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeCgroups makes a directory tree standing for a cgroup2 mount with
// two containers of one pod (ids ctrA and ctrB, sharing their first
// digits) and points mountsFile at it.
func fakeCgroups(t *testing.T) (mount string) {
	mount = t.TempDir()
	pod := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1c7a3e5f_2b4d_4e6f_8a9b_0c1d2e3f4a5b.slice"
	for _, id := range []string{ctrA, ctrB} {
		if err := os.MkdirAll(filepath.Join(mount, pod, "cri-containerd-"+id+".scope", "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounts := filepath.Join(t.TempDir(), "mounts")
	if err := os.WriteFile(mounts, []byte("cgroup2 "+mount+" cgroup2 rw 0 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := mountsFile
	mountsFile = mounts
	t.Cleanup(func() { mountsFile = old })
	return mount
}

const (
	ctrA = "abcd000000000000000000000000000000000000000000000000000000000001"
	ctrB = "abcd100000000000000000000000000000000000000000000000000000000002"
)

func inode(t *testing.T, p string) uint64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestCgroupFilter(t *testing.T) {
	mount := fakeCgroups(t)
	scopeA := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1c7a3e5f_2b4d_4e6f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-" + ctrA + ".scope"
	for _, tt := range []struct {
		name      string
		attrs     string
		wantDiags []string
		wantPath  string
		wantLevel uint32
	}{
		{name: "cgroup", attrs: `cgroup = "/kubepods.slice"`, wantPath: "/kubepods.slice", wantLevel: 1},
		{name: "container by unique prefix", attrs: `container = "abcd0"`, wantPath: scopeA, wantLevel: 4},
		{name: "container by full id", attrs: `container = "` + ctrA + `"`, wantPath: scopeA, wantLevel: 4},
		{name: "cgroup that does not exist", attrs: `cgroup = "/does/not/exist"`, wantDiags: []string{"t.hcl:2:12: Invalid cgroup"}},
		{name: "relative cgroup", attrs: `cgroup = "kubepods.slice"`, wantDiags: []string{"t.hcl:2:12: Invalid cgroup"}},
		{name: "unknown container", attrs: `container = "ffff"`, wantDiags: []string{"t.hcl:2:15: Invalid container"}},
		{name: "ambiguous container", attrs: `container = "abcd"`, wantDiags: []string{"t.hcl:2:15: Invalid container"}},
		{name: "not an id", attrs: `container = "ABCD"`, wantDiags: []string{"t.hcl:2:15: Invalid container"}},
		{name: "both", attrs: "cgroup = \"/kubepods.slice\"\n  container = \"abcd0\"", wantDiags: []string{"t.hcl:3:15: Conflicting filters"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse("t.hcl", []byte("module \"openssl\" {\n  "+tt.attrs+"\n}\n"))
			if got := where(diags); !reflect.DeepEqual(got, tt.wantDiags) {
				t.Fatalf("diagnostics:\ngot  %q\nwant %q\n(%s)", got, tt.wantDiags, diags.Error())
			}
			if tt.wantDiags != nil {
				return
			}
			c := f.Modules[0].Common
			if c.CgroupPath != tt.wantPath || c.CgroupLevel != tt.wantLevel || c.CgroupID != inode(t, filepath.Join(mount, tt.wantPath)) {
				t.Errorf("common %+v, want path %s level %d", c, tt.wantPath, tt.wantLevel)
			}
		})
	}
	// The ambiguity names both containers.
	_, diags := Parse("t.hcl", []byte("module \"openssl\" {\n  container = \"abcd\"\n}\n"))
	if d := diags.Error(); !strings.Contains(d, ctrA[:12]) || !strings.Contains(d, ctrB[:12]) {
		t.Errorf("ambiguity does not name both containers: %s", d)
	}
}
