package tlsrecord

import (
	"fmt"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// CheckDecoded reports, for a module's fuzz target, what is wrong with ev,
// which a module's Decode accepted from raw: a payload that is not the
// record's data, no function, or no connection.
func CheckDecoded(raw []byte, ev *sdk.Event) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return fmt.Errorf("accepted a record without a header: %w", err)
	}
	if len(ev.Payload) != int(h.Len) || len(raw) < DataOffset+int(h.Len) || h.Len > ChunkMax {
		return fmt.Errorf("accepted a record whose data does not fit: len %d, raw %d, payload %d", h.Len, len(raw), len(ev.Payload))
	}
	if fn, _ := ev.Field(FieldFn); fn == "" || ev.Conn.ID == 0 {
		return fmt.Errorf("accepted a record without function or connection: %+v", ev)
	}
	return nil
}
