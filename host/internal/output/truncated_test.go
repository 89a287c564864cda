package output

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/harness"
	"github.com/ecaphost/ecaphost/shared/proto/outputv1"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/encoding/protodelim"
)

// cutResponse is an HTTP response whose body the capture cut: 4096 bytes
// shown of 65595.
func cutResponse() sdk.Event {
	ev := sdk.Event{Time: t0, Module: "openssl", Kind: "http_response", PID: 7, Comm: "nginx",
		Payload: []byte("HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("x", 4054))}
	ev.AddField("status", "200")
	ev.AddField("truncated", "true")
	ev.AddField("payload_bytes", "65595")
	return ev
}

// TestTruncatedBodyMarked: every format says a cut payload's real length.
func TestTruncatedBodyMarked(t *testing.T) {
	for _, tc := range []struct {
		format Format
		want   []string
	}{
		{FormatJSON, []string{`"truncated":"true"`, `"payload_bytes":"65595"`, `"payload_len":4096`}},
		{FormatText, []string{"truncated=true", "payload_bytes=65595"}},
	} {
		var sb harness.Buffer
		o, err := New("test", &sb, tc.format, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Write([]sdk.Event{cutResponse()}); err != nil {
			t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(sb.String(), w) {
				t.Errorf("%s output lacks %s:\n%s", tc.format, w, sb.String()[:min(len(sb.String()), 300)])
			}
		}
	}
}

func TestProtobufPayloadBytes(t *testing.T) {
	var sb harness.Buffer
	o, err := New("test", &sb, FormatProtobuf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	whole := commands("ls")
	bad := cutResponse()
	bad.Fields[2].Value = "many"
	if err := o.Write([]sdk.Event{cutResponse(), whole[0], bad}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(strings.NewReader(sb.String()))
	var got []*outputv1.Event
	for {
		var m outputv1.Event
		if err := protodelim.UnmarshalFrom(r, &m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, &m)
	}
	if len(got) != 3 {
		t.Fatalf("%d messages", len(got))
	}
	if got[0].PayloadBytes == nil || *got[0].PayloadBytes != 65595 || len(got[0].Payload) != 4096 {
		t.Errorf("cut response: payload_bytes %v, payload %d bytes", got[0].PayloadBytes, len(got[0].Payload))
	}
	if got[1].PayloadBytes != nil || got[2].PayloadBytes != nil {
		t.Errorf("payload_bytes set on a whole event (%v) or from a bad field (%v)", got[1].PayloadBytes, got[2].PayloadBytes)
	}
}

func TestOTLPPayloadBytes(t *testing.T) {
	ev := cutResponse()
	for _, kv := range appendAttributes(nil, &ev) {
		if kv.Key == attrPayloadBytes {
			if kv.Value.Type() != attribute.INT64 || kv.Value.AsInt64() != 65595 {
				t.Errorf("%s = %v", kv.Key, kv.Value.AsString())
			}
			return
		}
	}
	t.Errorf("no %s attribute", attrPayloadBytes)
}
