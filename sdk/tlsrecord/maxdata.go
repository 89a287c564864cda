package tlsrecord

import (
	"github.com/ecaphost/ecaphost/sdk"
)

// The snap lengths of kern/include/tls.h.
const (
	// AttrMaxData is the config attribute of the kernel-side snap length
	// per call: a TLS module adds MaxDataAttribute to its schema, reads it
	// with MaxData and hands Constants to its Spec.
	AttrMaxData = "max_data"
	// OverloadData is how many bytes of a call the kernel copies while
	// the module's ring buffer is over half full (tls_overload_data):
	// enough for the head of any HTTP message, so that an overloaded host
	// still sees every request and response, their bodies cut.
	OverloadData = 4096

	constMaxData = "tls_max_data"
)

// MaxDataAttribute declares max_data for a TLS module's config block.
var MaxDataAttribute = sdk.Attribute{
	Name:    AttrMaxData,
	Type:    sdk.TypeNumber,
	Default: int64(0),
	Description: "Most bytes of each SSL read or write copied from the process (0: all, up to 16 MiB); " +
		"a longer call's events are marked truncated with its real length (field payload_bytes), " +
		"and counted in truncated_records and truncated_bytes. Whatever it is, while the kernel buffer " +
		"is over half full only the first 4096 bytes of a call are copied.",
}

// MaxData returns the max_data value of cfg (defaults applied): 0 for no
// limit but CallMax, else a byte count from 1 to CallMax. Anything else
// is a diagnostic on the attribute.
func MaxData(cfg sdk.Config) (uint32, sdk.Diagnostic, bool) {
	v := cfg.Number(AttrMaxData)
	switch {
	case v < 0:
		return 0, sdk.Errorf(AttrMaxData, "Invalid value",
			"%s is %d: it must be a number of bytes (0: no limit)", AttrMaxData, v), false
	case v > CallMax:
		return 0, sdk.Errorf(AttrMaxData, "Invalid value",
			"%s is %d: the kernel copies at most %d bytes (16 MiB) of a call; use 0 for that limit", AttrMaxData, v, CallMax), false
	}
	return uint32(v), sdk.Diagnostic{}, true
}

// Constants returns the values of tls.h's constants for a Spec's
// Constants, for max_data maxData (0: none): a new map each call, which
// the module may add its own to.
func Constants(maxData uint32) map[string]any {
	return map[string]any{constMaxData: maxData}
}
