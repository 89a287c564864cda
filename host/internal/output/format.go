package output

import (
	"fmt"

	"github.com/ecaphost/ecaphost/sdk"
)

// Format is how an output writes events.
type Format string

// The formats, named as in the configuration file.
const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatProtobuf Format = "protobuf"
)

// ParseFormat returns the Format called s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatJSON, FormatProtobuf:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q (want %s, %s or %s)", s, FormatText, FormatJSON, FormatProtobuf)
}

// Encoder formats events in one Format. It keeps buffers between calls:
// it is not safe for concurrent use.
type Encoder struct {
	format Format
	pb     *protoEncoder
	json   *jsonEncoder
	cg     cgroupCache
}

// NewEncoder returns an Encoder for f. cg turns events' cgroup ids into
// paths and containers; nil shows the ids alone.
func NewEncoder(f Format, cg Cgroups) (*Encoder, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	e := &Encoder{format: f, cg: cgroupCache{src: cg}}
	switch f {
	case FormatProtobuf:
		e.pb = &protoEncoder{}
	case FormatJSON:
		e.json = &jsonEncoder{}
	}
	return e, nil
}

// Format returns the format of e.
func (e *Encoder) Format() Format { return e.format }

// Append appends the encoding of ev to dst: a line ending in '\n' for
// text and JSON, a varint size and an Event message for protobuf. It does
// not keep ev.
func (e *Encoder) Append(dst []byte, ev *sdk.Event) ([]byte, error) {
	var cg *cgroupCache
	if e.cg.lookup(ev) != nil {
		cg = &e.cg
	}
	switch e.format {
	case FormatText:
		return appendText(dst, ev, cg), nil
	case FormatJSON:
		return e.json.append(dst, ev, cg), nil
	default:
		return e.pb.append(dst, ev, cg)
	}
}
