package pluginhost

import (
	"errors"
	"strings"
	"testing"
)

// TestNegotiate: the highest common version wins; a plugin with none in
// common is refused with a message naming both lists and what to do:
// rebuild an older plugin with the SDK, or upgrade the host for a newer
// one.
func TestNegotiate(t *testing.T) {
	host := []uint32{1, 2}
	cases := []struct {
		name   string
		plugin []uint32
		want   uint32
		advice string // in the refusal; "" when served
	}{
		{"plugin of the previous SDK release", []uint32{1, 2}, 2, ""},
		{"plugin speaking version 1 only", []uint32{1}, 1, ""},
		{"plugin newer than the host", []uint32{2, 3}, 2, ""},
		{"plugin too old", []uint32{0}, 0, "rebuild the plugin with an ecaphost SDK speaking version 2"},
		{"plugin naming no version", nil, 0, "rebuild the plugin"},
		{"plugin too new", []uint32{98, 99}, 0, "a newer ecaphost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(host, tc.plugin)
			if tc.advice == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Negotiate = %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrNoCommonAPIVersion) || !strings.Contains(err.Error(), tc.advice) || !strings.Contains(err.Error(), "[1 2]") {
				t.Fatalf("Negotiate = %d, %v; want a refusal naming [1 2] and saying %q", got, err, tc.advice)
			}
		})
	}
}
