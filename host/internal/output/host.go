package output

import (
	"time"

	"github.com/ecaphost/ecaphost/sdk"
)

// Kinds of the records the host writes itself.
const (
	// KindGap marks events that were lost: an output or a transport queue
	// dropped them, or a plugin crashed and was restarted.
	KindGap = "host.gap"
	// KindNotice is anything else the host wants in the event stream.
	KindNotice = "host.notice"
)

// Gap returns a KindGap record about module: its first field is
// reason=reason, then fields (for example lost=12, restarts=1).
func Gap(t time.Time, module, reason string, fields ...sdk.Field) sdk.Event {
	return hostEvent(t, module, KindGap, "reason", reason, fields)
}

// Notice returns a KindNotice record about module: its first field is
// message=message, then fields.
func Notice(t time.Time, module, message string, fields ...sdk.Field) sdk.Event {
	return hostEvent(t, module, KindNotice, "message", message, fields)
}

func hostEvent(t time.Time, module, kind, key, value string, fields []sdk.Field) sdk.Event {
	fs := make([]sdk.Field, 0, 1+len(fields))
	fs = append(fs, sdk.Field{Key: key, Value: value})
	fs = append(fs, fields...)
	return sdk.Event{Time: t, Module: module, Kind: kind, Fields: fs}
}
