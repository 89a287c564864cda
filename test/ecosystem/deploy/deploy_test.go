package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes the YAML document doc into obj as the API server
// does: field names case-sensitive, an unknown or duplicate field an error.
func decodeStrict(doc string, obj any) error {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// manifest returns the one yaml block of docs/deploying.md.
func manifest(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "deploying.md"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(doc), "```yaml\n")
	if len(parts) != 2 {
		t.Fatalf("docs/deploying.md has %d yaml blocks, want 1", len(parts)-1)
	}
	end := strings.Index(parts[1], "```")
	if end < 0 {
		t.Fatal("the yaml block of docs/deploying.md does not end")
	}
	return parts[1][:end]
}

// TestDaemonSetManifest decodes every document of the manifest strictly
// (an unknown or misplaced field is an error) into its Kubernetes type
// and checks what capture needs of the DaemonSet.
func TestDaemonSetManifest(t *testing.T) {
	var ds *appsv1.DaemonSet
	var cm *corev1.ConfigMap
	kinds := map[string]int{}
	for i, doc := range strings.Split(manifest(t), "\n---\n") {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		kinds[meta.Kind]++
		var obj any
		switch fmt.Sprintf("%s %s", meta.APIVersion, meta.Kind) {
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "v1 ConfigMap":
			cm = &corev1.ConfigMap{}
			obj = cm
		case "apps/v1 DaemonSet":
			ds = &appsv1.DaemonSet{}
			obj = ds
		default:
			t.Fatalf("document %d: unexpected %s %s", i, meta.APIVersion, meta.Kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, meta.Kind, err)
		}
	}
	if ds == nil || cm == nil {
		t.Fatalf("kinds %v: want a ConfigMap and a DaemonSet", kinds)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Errorf("the DaemonSet does not set hostPID")
	}
	if sel, labels := ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels; len(sel) == 0 || labels[("app.kubernetes.io/name")] != sel["app.kubernetes.io/name"] {
		t.Errorf("selector %v does not select the template's labels %v", sel, labels)
	}
	host := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			host[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]bool{}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	for _, m := range c.VolumeMounts {
		if p, ok := host[m.Name]; ok {
			mounted[p] = true
		}
	}
	for _, p := range []string{"/sys/kernel/btf", "/sys/fs/cgroup", "/proc"} {
		if !mounted[p] {
			t.Errorf("the host's %s is not mounted", p)
		}
	}
	hcl, ok := cm.Data["capture.hcl"]
	if !ok || !strings.Contains(hcl, `output "otlp"`) {
		t.Errorf("the ConfigMap's capture.hcl does not send to a Collector:\n%s", hcl)
	}
	if len(c.Args) != 2 || c.Args[0] != "run" || c.Args[1] != "/etc/ecaphost/capture.hcl" {
		t.Errorf("container args %v", c.Args)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("no /healthz readiness probe")
	}
}

// TestSystemdUnit runs systemd-analyze verify on packaging/ecaphost.service
// where it is installed, with ExecStart pointing at a binary that exists
// (verify refuses a missing one).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "ecaphost.service"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/ecaphost run ")) {
		t.Fatalf("the unit does not start /usr/local/bin/ecaphost run")
	}
	path := filepath.Join(t.TempDir(), "ecaphost.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/ecaphost"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestManifestConfigValidates runs `ecaphost validate` on the ConfigMap's
// capture.hcl, with the plugins and CA of this checkout in place of the
// image's.
func TestManifestConfigValidates(t *testing.T) {
	bin := filepath.Join(repoRoot(t), "bin", "ecaphost")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("ECAPHOST_E2E") != "" {
			t.Fatalf("bin/ecaphost not built: %v", err)
		}
		t.Skipf("bin/ecaphost not built (make build): %v", err)
	}
	var cm corev1.ConfigMap
	for _, doc := range strings.Split(manifest(t), "\n---\n") {
		if strings.Contains(doc, "kind: ConfigMap") {
			if err := decodeStrict(doc, &cm); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	hcl := strings.NewReplacer(
		"/opt/ecaphost/plugins", filepath.Join(repoRoot(t), "bin", "plugins"),
		"/etc/ecaphost/tls/ca.crt", ca,
	).Replace(cm.Data["capture.hcl"])
	path := filepath.Join(dir, "capture.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", path)
	cmd.Env = append(os.Environ(), "NODE_IP=127.0.0.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ecaphost validate on the manifest's capture.hcl: %v\n%s", err, out)
	}
}
