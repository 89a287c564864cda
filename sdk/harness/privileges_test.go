package harness

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a check ended the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestRequirePrivileges(t *testing.T) {
	for _, tc := range []struct {
		name, e2e string
		wantFail  bool
	}{
		{"skips", "", false},
		{"skips unless exactly 1", "yes", false},
		{"fails under ECAPHOST_E2E=1", "1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ECAPHOST_E2E", tc.e2e)
			r := &recorder{TB: t}
			RequirePrivileges(r, "/nonexistent/libfoo.so", "nonexistent-program-ecaphost", "/bin/sh", "sh")
			got, other := r.skipped, r.failed
			if tc.wantFail {
				got, other = other, got
			}
			if got == "" || other != "" {
				t.Fatalf("skipped %q, failed %q", r.skipped, r.failed)
			}
			for _, want := range []string{"/nonexistent/libfoo.so", "nonexistent-program-ecaphost on PATH"} {
				if !strings.Contains(got, want) {
					t.Errorf("message %q does not name %s", got, want)
				}
			}
			for _, present := range []string{"/bin/sh", " sh on PATH"} {
				if strings.Contains(got, present) {
					t.Errorf("message %q names %s, which exists", got, present)
				}
			}
		})
	}
}
