package output

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The attribute names of OTLP records that no semantic convention covers.
const (
	attrModule       = "ecaphost.module"
	attrKind         = "ecaphost.kind"
	attrConnectionID = "ecaphost.connection.id"
	attrCgroupID     = "ecaphost.cgroup.id"
	attrCgroupPath   = attribute.Key("ecaphost.cgroup.path")
	attrQoSClass     = attribute.Key("ecaphost.k8s.pod.qos_class")
	// attrPayloadBytes is set on a record whose body was cut: the length
	// of the whole payload (by the output beyond maxBodyBytes, or from the
	// event's field payload_bytes when the capture cut it).
	attrPayloadBytes = "ecaphost.payload_bytes"
	// fieldPayloadBytes is the field of an event whose payload the
	// capture cut (tlsrecord.FieldPayloadBytes, stream's too): its whole
	// length.
	fieldPayloadBytes = "payload_bytes"
	attrDirection     = "ecaphost.direction"
	// attrPrefix names a module's own fields: ecaphost.<key>.
	attrPrefix = "ecaphost."
)

// fieldAttrs maps the fields whose meaning a semantic convention names.
// The table in docs/deploying.md says the same; keep them together.
var fieldAttrs = map[string]string{
	"method": string(semconv.HTTPRequestMethodKey),
}

// appendAttributes appends the attributes of ev's OTLP record to dst: the
// semantic conventions' names where one exists, ecaphost.* otherwise.
func appendAttributes(dst []attribute.KeyValue, ev *sdk.Event) []attribute.KeyValue {
	dst = append(dst,
		attribute.String(attrModule, ev.Module),
		attribute.String(attrKind, ev.Kind))
	if ev.PID != 0 {
		dst = append(dst, semconv.ProcessPIDKey.Int64(int64(ev.PID)))
	}
	if ev.TID != 0 {
		dst = append(dst, semconv.ThreadIDKey.Int64(int64(ev.TID)))
	}
	if ev.PID != 0 || ev.UID != 0 {
		dst = append(dst, semconv.UserIDKey.String(strconv.FormatUint(uint64(ev.UID), 10)))
	}
	if ev.Comm != "" {
		dst = append(dst, semconv.ProcessExecutableNameKey.String(ev.Comm))
	}
	c := ev.Conn
	if c.ID != 0 {
		dst = append(dst, attribute.String(attrConnectionID, strconv.FormatUint(c.ID, 10)))
	}
	if c.Local.IsValid() {
		dst = append(dst,
			semconv.NetworkLocalAddressKey.String(c.Local.Addr().Unmap().String()),
			semconv.NetworkLocalPortKey.Int64(int64(c.Local.Port())))
	}
	if c.Remote.IsValid() {
		dst = append(dst,
			semconv.NetworkPeerAddressKey.String(c.Remote.Addr().Unmap().String()),
			semconv.NetworkPeerPortKey.Int64(int64(c.Remote.Port())))
	}
	if c.Direction != sdk.DirectionUnknown {
		dst = append(dst, attribute.String(attrDirection, c.Direction.String()))
	}
	_, request := ev.Field("method")
	for _, f := range ev.Fields {
		dst = appendField(dst, f, request)
	}
	return dst
}

// appendCgroupAttributes appends the attributes of an event's cgroup
// (nil: none): its id and path, and the container and pod it names.
func appendCgroupAttributes(dst []attribute.KeyValue, v *cgroup.Identity) []attribute.KeyValue {
	if v == nil {
		return dst
	}
	dst = append(dst, attribute.String(attrCgroupID, strconv.FormatUint(v.ID, 10)))
	for _, kv := range [...]struct {
		key   attribute.Key
		value string
	}{
		{attrCgroupPath, v.Path},
		{semconv.ContainerIDKey, v.ContainerID},
		{semconv.ContainerRuntimeNameKey, v.Runtime},
		{semconv.K8SPodUIDKey, v.PodUID},
		{attrQoSClass, v.QoS},
	} {
		if kv.value != "" {
			dst = append(dst, kv.key.String(kv.value))
		}
	}
	return dst
}

// appendField appends the attribute of one field. request tells whether
// the event is an HTTP request (its headers are then request headers).
func appendField(dst []attribute.KeyValue, f sdk.Field, request bool) []attribute.KeyValue {
	if name, ok := fieldAttrs[f.Key]; ok {
		return append(dst, attribute.String(name, f.Value))
	}
	switch {
	case f.Key == "path":
		path, query, hasQuery := strings.Cut(f.Value, "?")
		dst = append(dst, semconv.URLPathKey.String(path))
		if hasQuery {
			dst = append(dst, semconv.URLQueryKey.String(query))
		}
		return dst
	case f.Key == "status":
		if n, err := strconv.Atoi(f.Value); err == nil {
			return append(dst, semconv.HTTPResponseStatusCodeKey.Int64(int64(n)))
		}
	case f.Key == fieldPayloadBytes:
		// The payload was cut before the output (max_data, overload):
		// its whole length, as for a body the output cuts itself.
		if n, err := strconv.ParseInt(f.Value, 10, 64); err == nil {
			return append(dst, attribute.Int64(attrPayloadBytes, n))
		}
	case f.Key == "proto":
		if name, version, ok := strings.Cut(f.Value, "/"); ok {
			return append(dst,
				semconv.NetworkProtocolNameKey.String(strings.ToLower(name)),
				semconv.NetworkProtocolVersionKey.String(version))
		}
	case strings.HasPrefix(f.Key, "header."):
		name := strings.TrimPrefix(f.Key, "header.")
		if request {
			return append(dst, attribute.String("http.request.header."+strings.ToLower(name), f.Value))
		}
		return append(dst, attribute.String("http.response.header."+strings.ToLower(name), f.Value))
	}
	return append(dst, attribute.String(attrPrefix+f.Key, f.Value))
}

// body returns a record's body: payload as a string when it is UTF-8
// text, as bytes otherwise; both copies (payloads are reused).
func body(payload []byte) attribute.Value {
	if len(payload) == 0 {
		return attribute.Value{}
	}
	if utf8.Valid(payload) {
		return attribute.StringValue(string(payload))
	}
	return attribute.ByteSliceValue(payload) // copies
}

// truncateBody returns the first maxBodyBytes of payload, fewer when that
// would cut a UTF-8 character of a text payload in two.
func truncateBody(payload []byte) []byte {
	n := maxBodyBytes
	if utf8.Valid(payload) {
		for n > 0 && !utf8.RuneStart(payload[n]) {
			n--
		}
	}
	return payload[:n]
}
