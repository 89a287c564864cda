package tlsrecord

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
)

// fns is the function table of the tests' module.
var fns = []string{1: "lib_write", 2: "lib_read", 4: "lib_read_ex"}

func newDecoder() *Decoder {
	return &Decoder{Lib: "testlib", Fns: fns}
}

// chunk describes a record for rawRecord.
type chunk struct {
	flags        uint32
	session      uint64
	serial       uint64
	seq          uint64
	total        uint64 // 0: len(data) + offset
	offset       uint64
	family       uint16
	laddr, raddr netip.AddrPort
	fn, dir      uint8
	info         uint32
	data         string
}

// rawRecord builds the record as the kernel sends it.
func rawRecord(c chunk) []byte {
	r := Record{Session: c.session, Serial: c.serial, CallSeq: c.seq, Total: c.total, Offset: c.offset, Fd: 5,
		Family: c.family, Lport: c.laddr.Port(), Rport: c.raddr.Port(), Fn: c.fn, Dir: c.dir, Info: c.info}
	r.Hdr = ebpfbase.Header{TimestampNs: 123456789, PID: 4242, TID: 4243, UID: 1000, Kind: KindData, Len: uint32(len(c.data)), Flags: c.flags}
	copy(r.Hdr.Comm[:], "curl")
	if r.Session == 0 {
		r.Session = 0x55d0c0ffee00
	}
	if r.CallSeq == 0 {
		r.CallSeq = 1
	}
	if r.Total == 0 {
		r.Total = c.offset + uint64(len(c.data))
	}
	if r.Fn == 0 {
		r.Fn = 1
	}
	if r.Dir == 0 {
		r.Dir = DirEgress
	}
	if c.laddr.IsValid() {
		putAddr(r.Laddr[:], c.laddr.Addr())
		putAddr(r.Raddr[:], c.raddr.Addr())
	}
	copy(r.Data[:], c.data)
	return r.Bytes()
}

func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

func TestDecode(t *testing.T) {
	local, remote := netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:443")
	local6, remote6 := netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.1]:443")
	tooLong := rawRecord(chunk{data: "x"})
	binary.NativeEndian.PutUint32(tooLong[24:], ChunkMax+1)
	lying := rawRecord(chunk{data: "abc"})
	binary.NativeEndian.PutUint32(lying[24:], 10)
	wrongKind := rawRecord(chunk{data: "x"})
	binary.NativeEndian.PutUint32(wrongKind[20:], 9)
	tests := []struct {
		name       string
		raw        []byte
		wantData   string
		wantDir    sdk.Direction
		wantLocal  netip.AddrPort
		wantRemote netip.AddrPort
		wantFields map[string]string
		wantInfo   uint32
		wantErr    error
	}{
		{name: "write over IPv4", raw: rawRecord(chunk{family: afInet, laddr: local, raddr: remote, data: "GET / HTTP/1.1\r\n"}),
			wantData: "GET / HTTP/1.1\r\n", wantDir: sdk.DirectionEgress, wantLocal: local, wantRemote: remote,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write"}},
		{name: "read_ex over IPv6", raw: rawRecord(chunk{family: afInet6, laddr: local6, raddr: remote6, fn: 4, dir: DirIngress, data: "HTTP/1.1 200 OK\r\n"}),
			wantData: "HTTP/1.1 200 OK\r\n", wantDir: sdk.DirectionIngress, wantLocal: local6, wantRemote: remote6,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_read_ex"}},
		{name: "IPv4-mapped addresses are unmapped", raw: rawRecord(chunk{family: afInet6, laddr: mapped, raddr: mapped, data: "x"}),
			wantData: "x", wantDir: sdk.DirectionEgress,
			wantLocal: netip.MustParseAddrPort("10.0.0.1:443"), wantRemote: netip.MustParseAddrPort("10.0.0.1:443"),
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write"}},
		{name: "unknown connection", raw: rawRecord(chunk{fn: 2, dir: DirIngress, data: "y"}), wantData: "y", wantDir: sdk.DirectionIngress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_read"}},
		{name: "unix socket has no addresses", raw: rawRecord(chunk{family: 1, data: "z"}), wantData: "z", wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write"}},
		{name: "module info is returned", raw: rawRecord(chunk{info: 0xdeadbeef, data: "i"}), wantData: "i", wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write"}, wantInfo: 0xdeadbeef},
		{name: "last chunk of a truncated call", raw: rawRecord(chunk{flags: FlagTruncated, total: 20 << 20, offset: 16<<20 - 4, data: "tail"}),
			wantData: "tail", wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write", FieldTruncated: "true",
				FieldPayloadBytes: strconv.Itoa(4<<20 + 4), FieldGap: "true"}},
		{name: "call cut to max_data", raw: rawRecord(chunk{flags: FlagTruncated | FlagLast, total: 65536, data: "HTTP/1.1 200 OK\r\n"}),
			wantData: "HTTP/1.1 200 OK\r\n", wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write", FieldTruncated: "true", FieldPayloadBytes: "65536"}},
		{name: "unreadable chunk", raw: rawRecord(chunk{flags: FlagFault, total: 100}), wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write", FieldTruncated: "true"}},
		{name: "ring buffer padding after the data", raw: append(rawRecord(chunk{data: "pwd"}), 0, 0, 0, 0, 0), wantData: "pwd", wantDir: sdk.DirectionEgress,
			wantFields: map[string]string{FieldLib: "testlib", FieldFn: "lib_write"}},
		{name: "empty", raw: nil, wantErr: ebpfbase.ErrShortRecord},
		{name: "header only", raw: rawRecord(chunk{})[:ebpfbase.HeaderSize], wantErr: ebpfbase.ErrShortRecord},
		{name: "fixed fields cut", raw: rawRecord(chunk{})[:DataOffset-1], wantErr: ebpfbase.ErrShortRecord},
		{name: "data shorter than announced", raw: lying, wantErr: ebpfbase.ErrShortRecord},
		{name: "chunk longer than the kernel sends", raw: tooLong, wantErr: ErrBadRecord},
		{name: "unknown kind", raw: wrongKind, wantErr: ErrBadRecord},
		{name: "unknown function", raw: rawRecord(chunk{fn: 9, data: "x"}), wantErr: ErrBadRecord},
		{name: "function without a name", raw: rawRecord(chunk{fn: 3, data: "x"}), wantErr: ErrBadRecord},
		{name: "unknown direction", raw: rawRecord(chunk{dir: 3, data: "x"}), wantErr: ErrBadRecord},
		{name: "chunk beyond the call", raw: rawRecord(chunk{total: 2, data: "xyz"}), wantErr: ErrBadRecord},
		{name: "offset beyond the call", raw: rawRecord(chunk{total: 2, offset: 1 << 63, data: "x"}), wantErr: ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder()
			var ev sdk.Event
			info, err := d.Decode(tt.raw, &ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "testlib record") {
					t.Errorf("error %q does not name the library", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info != tt.wantInfo {
				t.Errorf("info %#x, want %#x", info, tt.wantInfo)
			}
			if ev.Kind != KindTLSData || string(ev.Payload) != tt.wantData || ev.Route != sdk.RouteStream {
				t.Errorf("kind %q data %q route %v, want %q %q stream", ev.Kind, ev.Payload, ev.Route, KindTLSData, tt.wantData)
			}
			if ev.PID != 4242 || ev.TID != 4243 || ev.UID != 1000 || ev.Comm != "curl" || ev.Time.IsZero() {
				t.Errorf("header fields %+v", ev)
			}
			if ev.Conn.ID != ConnID(4242, 0x55d0c0ffee00, 0) || ev.Conn.Direction != tt.wantDir ||
				ev.Conn.Local != tt.wantLocal || ev.Conn.Remote != tt.wantRemote {
				t.Errorf("connection %+v, want %v -> %v %v", ev.Conn, tt.wantLocal, tt.wantRemote, tt.wantDir)
			}
			if len(ev.Fields) != len(tt.wantFields) {
				t.Errorf("fields %v, want %v", ev.Fields, tt.wantFields)
			}
			for k, v := range tt.wantFields {
				if got, _ := ev.Field(k); got != v {
					t.Errorf("field %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestDecodeFillsHeader: the decoder's zero value fills the header fields
// itself, with the comm interned.
func TestDecodeFillsHeader(t *testing.T) {
	d := &Decoder{Lib: "x", Fns: fns}
	var ev sdk.Event
	if _, err := d.Decode(rawRecord(chunk{data: "abc"}), &ev); err != nil || string(ev.Payload) != "abc" || ev.PID != 4242 || ev.TID != 4243 || ev.UID != 1000 || ev.Comm != "curl" || ev.Time.IsZero() {
		t.Errorf("Decode: %v, %+v", err, ev)
	}
}

func TestConnID(t *testing.T) {
	base := ConnID(100, 0x1000, 5)
	if base == 0 || base != ConnID(100, 0x1000, 5) {
		t.Fatalf("ConnID is %x, or not deterministic", base)
	}
	for _, other := range []uint64{ConnID(101, 0x1000, 5), ConnID(100, 0x1008, 5), ConnID(100, 0x1000, 6)} {
		if other == base {
			t.Errorf("ConnID does not tell pid, session and serial apart")
		}
	}
}

func TestCounters(t *testing.T) {
	cs := Counters()
	if len(cs) != 6 {
		t.Fatalf("%d counters", len(cs))
	}
	seen := map[uint32]bool{}
	for _, c := range cs {
		if c.Map != StatsMap || seen[c.Index] || c.Name == "" {
			t.Errorf("counter %+v", c)
		}
		seen[c.Index] = true
	}
	cs[0].Name = "changed"
	if Counters()[0].Name == "changed" {
		t.Error("Counters returns a shared slice")
	}
}

// TestGapTracking feeds chunks of one connection and checks where the
// tracker says records were lost.
func TestGapTracking(t *testing.T) {
	type step struct {
		seq, off, n, total uint64
		gap                bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one call in three chunks", []step{{1, 0, 16, 40, false}, {1, 16, 16, 40, false}, {1, 32, 8, 40, false}}},
		{"calls in a row", []step{{1, 0, 10, 10, false}, {2, 0, 5, 5, false}, {3, 0, 7, 7, false}}},
		{"chunk lost in a call", []step{{1, 0, 16, 40, false}, {1, 32, 8, 40, true}}},
		{"last chunk of a call lost", []step{{1, 0, 16, 20, false}, {2, 0, 3, 3, true}}},
		{"whole call lost", []step{{1, 0, 10, 10, false}, {3, 0, 5, 5, true}, {4, 0, 1, 1, false}}},
		{"first call lost", []step{{2, 0, 10, 10, true}}},
		{"first chunk lost", []step{{1, 16, 4, 20, true}}},
		{"unreadable chunk (no data)", []step{{1, 0, 0, 20, false}, {1, 16, 4, 20, true}}},
		{"session not tracked by the kernel", []step{{0, 0, 5, 5, false}, {0, 0, 5, 5, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g gapTracker
			for i, s := range tt.steps {
				if got := g.see(streamKey{7, sdk.DirectionEgress}, s.seq, s.off, s.n, s.total); got != s.gap {
					t.Errorf("step %d %+v: gap %v, want %v", i, s, got, s.gap)
				}
			}
		})
	}
}

// TestCutCallIsNoGap: the call after one the kernel cut follows on.
func TestCutCallIsNoGap(t *testing.T) {
	d := newDecoder()
	var ev sdk.Event
	for i, c := range []chunk{
		{seq: 1, flags: FlagTruncated | FlagLast, total: 16384, data: "head"},
		{seq: 2, data: "next"},
		{seq: 3, flags: FlagTruncated | FlagLast, total: 40000, offset: 16384, data: "x"},
	} {
		ev.Reset()
		if _, err := d.Decode(rawRecord(c), &ev); err != nil {
			t.Fatal(err)
		}
		if _, gap := ev.Field(FieldGap); gap != (i == 2) {
			t.Errorf("record %d: gap %v", i, gap)
		}
	}
}

func TestMaxData(t *testing.T) {
	schema := sdk.Schema{Attributes: []sdk.Attribute{MaxDataAttribute}}
	if err := schema.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  sdk.Config
		want uint32
		err  string
	}{
		{"default: no limit", sdk.Config{}, 0, ""},
		{"4096", sdk.Config{AttrMaxData: int64(4096)}, 4096, ""},
		{"the kernel's most", sdk.Config{AttrMaxData: int64(CallMax)}, CallMax, ""},
		{"negative", sdk.Config{AttrMaxData: int64(-1)}, 0, "max_data is -1: it must be a number of bytes (0: no limit)"},
		{"beyond 16 MiB", sdk.Config{AttrMaxData: int64(CallMax + 1)}, 0, "the kernel copies at most 16777216 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, d, ok := MaxData(tc.cfg.WithDefaults(schema))
			if tc.err == "" {
				if !ok || got != tc.want {
					t.Errorf("MaxData = %d, %v, %v; want %d", got, d, ok, tc.want)
				}
				if c := Constants(got); c[constMaxData] != tc.want {
					t.Errorf("Constants = %v", c)
				}
				return
			}
			if ok || d.Attribute != AttrMaxData || !strings.Contains(d.Detail, tc.err) {
				t.Errorf("MaxData = %d, %+v, %v; want an error on %s containing %q", got, d, ok, AttrMaxData, tc.err)
			}
		})
	}
}

// TestGapTrackingPerDirection: the directions of a connection number their
// calls apart, a loss in one is not a gap in the other.
func TestGapTrackingPerDirection(t *testing.T) {
	var g gapTracker
	out, in := streamKey{7, sdk.DirectionEgress}, streamKey{7, sdk.DirectionIngress}
	for i, s := range []struct {
		k                  streamKey
		seq, off, n, total uint64
		gap                bool
	}{
		{out, 1, 0, 16, 40, false}, // the rest of egress call 1 is lost
		{in, 1, 0, 10, 10, false},
		{in, 2, 0, 10, 10, false},
		{out, 2, 0, 5, 5, true},
	} {
		if got := g.see(s.k, s.seq, s.off, s.n, s.total); got != s.gap {
			t.Errorf("step %d: gap %v, want %v", i, got, s.gap)
		}
	}
}

func TestGapTrackerBounded(t *testing.T) {
	var g gapTracker
	for id := uint64(0); id < maxTracked+10; id++ {
		g.see(streamKey{id, sdk.DirectionIngress}, 1, 0, 1, 1)
	}
	if len(g.pos) > maxTracked {
		t.Errorf("tracker holds %d sessions, more than %d", len(g.pos), maxTracked)
	}
	// Once cleared, a session seen again at a later call is not called a gap.
	if g.see(streamKey{3, sdk.DirectionIngress}, 2, 0, 1, 1) {
		t.Error("gap claimed for a session the tracker forgot")
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	d := newDecoder()
	raws := [][]byte{
		rawRecord(chunk{family: afInet, laddr: netip.MustParseAddrPort("127.0.0.1:1"), raddr: netip.MustParseAddrPort("127.0.0.1:2"),
			total: 1 << 20, data: strings.Repeat("x", ChunkMax)}),
		rawRecord(chunk{family: afInet, flags: FlagTruncated, total: 1 << 30, offset: 1 << 20, data: strings.Repeat("y", 100)}),
	}
	var ev sdk.Event
	for _, raw := range raws {
		_, _ = d.Decode(raw, &ev)
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, raw := range raws {
			ev.Reset()
			if _, err := d.Decode(raw, &ev); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("Decode allocates %v times per record, want 0", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range []int{64, ChunkMax} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			d := newDecoder()
			raw := rawRecord(chunk{family: afInet, laddr: netip.MustParseAddrPort("127.0.0.1:40000"),
				raddr: netip.MustParseAddrPort("127.0.0.1:443"), total: 1 << 40, data: strings.Repeat("x", size)})
			var ev sdk.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for i := 0; b.Loop(); i++ {
				// Consecutive chunks of one long call: no gap, no new session.
				binary.NativeEndian.PutUint64(raw[offOffset:], uint64(i)*uint64(size))
				ev.Reset()
				if _, err := d.Decode(raw, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(rawRecord(chunk{family: afInet, laddr: netip.MustParseAddrPort("127.0.0.1:1"), raddr: netip.MustParseAddrPort("127.0.0.1:2"), data: "GET /"}))
	f.Add(rawRecord(chunk{family: afInet6, fn: 4, dir: DirIngress, flags: FlagTruncated | FlagFault, total: 1 << 30, data: "HTTP/1.1"}))
	f.Add([]byte{})
	f.Add(make([]byte, DataOffset))
	d := newDecoder()
	var ev sdk.Event
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev.Reset()
		if _, err := d.Decode(raw, &ev); err != nil {
			return
		}
		h, _ := ebpfbase.DecodeHeader(raw)
		if len(ev.Payload) != int(h.Len) || len(raw) < DataOffset+int(h.Len) || h.Len > ChunkMax {
			t.Fatalf("accepted a record whose data does not fit: len %d, raw %d", h.Len, len(raw))
		}
		if ev.Conn.ID == 0 || (ev.Conn.Direction != sdk.DirectionEgress && ev.Conn.Direction != sdk.DirectionIngress) {
			t.Fatalf("accepted a record without connection ID or direction: %+v", ev.Conn)
		}
	})
}
