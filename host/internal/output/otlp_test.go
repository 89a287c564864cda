package output

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"go.opentelemetry.io/otel/attribute"
)

func TestAppendAttributes(t *testing.T) {
	tests := []struct {
		name string
		ev   sdk.Event
		want map[string]string
	}{
		{
			name: "HTTP request",
			ev: sdk.Event{Module: "openssl", Kind: "http_request", PID: 42, TID: 43, UID: 1000, Comm: "curl",
				Conn: sdk.Connection{ID: 7, Local: netip.MustParseAddrPort("10.0.0.2:50000"), Remote: netip.MustParseAddrPort("[::ffff:10.0.0.1]:443"), Direction: sdk.DirectionEgress},
				Fields: []sdk.Field{{Key: "proto", Value: "HTTP/1.1"}, {Key: "method", Value: "GET"}, {Key: "path", Value: "/a?b=c"},
					{Key: "header.Content-Type", Value: "text/plain"}, {Key: "body_bytes", Value: "0"}, {Key: "container_id", Value: "abc"}}},
			want: map[string]string{
				"ecaphost.module": "openssl", "ecaphost.kind": "http_request",
				"process.pid": "42", "thread.id": "43", "user.id": "1000", "process.executable.name": "curl",
				"ecaphost.connection.id": "7", "ecaphost.direction": "egress",
				"network.local.address": "10.0.0.2", "network.local.port": "50000",
				"network.peer.address": "10.0.0.1", "network.peer.port": "443",
				"network.protocol.name": "http", "network.protocol.version": "1.1",
				"http.request.method": "GET", "url.path": "/a", "url.query": "b=c",
				"http.request.header.content-type": "text/plain", "ecaphost.body_bytes": "0",
				"ecaphost.container_id": "abc",
			},
		},
		{
			name: "HTTP response",
			ev: sdk.Event{Module: "nspr", Kind: "http_response", PID: 1,
				Fields: []sdk.Field{{Key: "status", Value: "404"}, {Key: "header.Server", Value: "x"}, {Key: "pod_uid", Value: "u"}}},
			want: map[string]string{
				"ecaphost.module": "nspr", "ecaphost.kind": "http_response", "process.pid": "1", "user.id": "0",
				"http.response.status_code": "404", "http.response.header.server": "x", "ecaphost.pod_uid": "u",
			},
		},
		{
			name: "host record",
			ev:   Notice(time.Unix(0, 0), "ecaphost", "output delivery resumed", sdk.Field{Key: "lost", Value: "3"}),
			want: map[string]string{
				"ecaphost.module": "ecaphost", "ecaphost.kind": KindNotice,
				"ecaphost.message": "output delivery resumed", "ecaphost.lost": "3",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, kv := range appendAttributes(nil, &tt.ev) {
				if _, dup := got[string(kv.Key)]; dup {
					t.Errorf("attribute %s twice", kv.Key)
				}
				got[string(kv.Key)] = kv.Value.String()
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d attributes %v, want %d", len(got), got, len(tt.want))
			}
		})
	}
}

func TestBody(t *testing.T) {
	if v := body([]byte("GET / HTTP/1.1\r\n")); v.Type() != attribute.STRING || v.AsString() != "GET / HTTP/1.1\r\n" {
		t.Errorf("text body: %v %q", v.Type(), v.AsString())
	}
	raw := []byte{0xff, 0x00, 0x01}
	v := body(raw)
	raw[0] = 0
	if v.Type() != attribute.BYTESLICE || v.AsByteSlice()[0] != 0xff {
		t.Errorf("binary body: %v %x (must be a copy)", v.Type(), v.AsByteSlice())
	}
}

// TestOTLPQueueBoundAndDropCount: with no Collector, a 1 MiB queue takes
// what fits, drops the rest at once (Write never waits), and Close counts
// what it could not deliver: every event is either written or dropped.
func TestOTLPQueueBoundAndDropCount(t *testing.T) {
	o, err := OpenOTLP(&config.OTLP{Endpoint: "127.0.0.1:1", Protocol: config.ProtocolGRPC, Insecure: true, QueueMiB: 1}, OTLPOptions{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	o.shutdownTimeout = 200 * time.Millisecond
	payload := []byte(strings.Repeat("x", 300<<10))
	var drops int
	for i := range 6 {
		began := time.Now()
		err := o.Write([]sdk.Event{{Module: "m", Kind: "k", PID: uint32(i + 1), Payload: payload}})
		// Never for room in the queue: a Writer would wait MaxWait (1 s).
		// (Copying 300 KiB took 345 ms once on a machine at load 20.)
		if took := time.Since(began); took >= DefaultMaxWait {
			t.Errorf("Write %d waited %v", i, took)
		}
		if errors.Is(err, ErrDropped) {
			drops++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if drops != 3 {
		t.Errorf("%d of 6 events of 300 KiB dropped by a 1 MiB queue, want 3", drops)
	}
	if got := o.QueueDepth(); got != 3 {
		t.Errorf("queue depth %d, want 3", got)
	}
	if err := o.Close(); err == nil {
		t.Errorf("Close with no Collector returned no error")
	}
	if o.Written() != 0 || o.Dropped() != 6 {
		t.Errorf("written %d dropped %d, want 0 and 6", o.Written(), o.Dropped())
	}
	if err := o.Write([]sdk.Event{{Module: "m"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

func TestOTLPWrongTLSFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenOTLP(&config.OTLP{Endpoint: "127.0.0.1:1", Protocol: config.ProtocolGRPC, CAFile: dir + "/none.pem", QueueMiB: 1}, OTLPOptions{})
	if err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing ca_file: %v", err)
	}
}

func TestTruncateBody(t *testing.T) {
	text := []byte(strings.Repeat("é", maxBodyBytes)) // 2 bytes each
	got := truncateBody(text[1:])                     // starts mid-character: not UTF-8
	if len(got) != maxBodyBytes {
		t.Errorf("binary payload cut to %d, want %d", len(got), maxBodyBytes)
	}
	got = truncateBody(append([]byte("a"), text...)) // "a" then characters straddling the limit
	if len(got) != maxBodyBytes-1 || !utf8.Valid(got) {
		t.Errorf("text cut to %d bytes (valid %v), want %d", len(got), utf8.Valid(got), maxBodyBytes-1)
	}
	if b := body(got); b.Type() != attribute.STRING {
		t.Errorf("cut text body is %v, want a string", b.Type())
	}
}

type cgroupTable map[uint64]*cgroup.Identity

func (c cgroupTable) Lookup(id uint64) *cgroup.Identity { return c[id] }

func TestCgroupAttributes(t *testing.T) {
	c := cgroupCache{src: cgroupTable{7: {ID: 7, Path: "/kubepods/burstable/podu/abc", ContainerID: "abc", Runtime: "containerd", PodUID: "u-1", QoS: "burstable"}}}
	for _, tt := range []struct {
		id   uint64
		want map[string]string
	}{
		{0, map[string]string{}},
		{7, map[string]string{"ecaphost.cgroup.id": "7", "ecaphost.cgroup.path": "/kubepods/burstable/podu/abc", "container.id": "abc",
			"container.runtime.name": "containerd", "k8s.pod.uid": "u-1", "ecaphost.k8s.pod.qos_class": "burstable"}},
		{9, map[string]string{"ecaphost.cgroup.id": "9"}}, // gone: the id alone
	} {
		got := map[string]string{}
		for _, kv := range appendCgroupAttributes(nil, c.lookup(&sdk.Event{CgroupID: tt.id})) {
			got[string(kv.Key)] = kv.Value.String()
		}
		if len(got) != len(tt.want) {
			t.Errorf("cgroup %d: %v, want %v", tt.id, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("cgroup %d: %s = %q, want %q", tt.id, k, got[k], v)
			}
		}
	}
}
