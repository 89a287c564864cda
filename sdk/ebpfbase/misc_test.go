package ebpfbase

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ecaphost/ecaphost/sdk"
)

func TestCommInterning(t *testing.T) {
	var c Stamper
	a := c.Comm([]byte("bash\x00\x00garbage"))
	b := c.Comm([]byte("bash\x00"))
	if a != "bash" || b != "bash" {
		t.Fatalf("interned %q and %q, want bash", a, b)
	}
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("the same comm was allocated twice")
	}
	if got := c.Comm([]byte("\x00bash")); got != "" {
		t.Errorf("empty comm interned as %q", got)
	}
	if got := c.Comm([]byte("sixteen-bytes-xx")); got != "sixteen-bytes-xx" {
		t.Errorf("comm without NUL interned as %q", got)
	}
	comm := []byte("curl\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	if n := testing.AllocsPerRun(1000, func() { c.Comm(comm) }); n != 0 {
		t.Errorf("interning a known comm allocates %v times, want 0", n)
	}
}

func TestKtimeToTime(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	got := KtimeToTime(uint64(ts.Nano()))
	if d := time.Since(got); d < 0 || d > 50*time.Millisecond {
		t.Errorf("KtimeToTime(now) is %v away from now", d)
	}
	later := KtimeToTime(uint64(ts.Nano()) + uint64(time.Second))
	if d := later.Sub(got); d != time.Second {
		t.Errorf("one second of ktime is %v of wall time", d)
	}
}

func TestDecodeHeader(t *testing.T) {
	raw := make([]byte, HeaderSize)
	for i := range raw {
		raw[i] = byte(i + 1)
	}
	copy(raw[32:], "bash\x00")
	h, err := DecodeHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Decoding must agree with the in-memory layout of Header.
	want := *(*Header)(unsafe.Pointer(&raw[0]))
	if h != want {
		t.Errorf("decoded %+v, memory layout says %+v", h, want)
	}
	if _, err := DecodeHeader(raw[:HeaderSize-1]); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short header: error %v, want ErrShortRecord", err)
	}
	if unsafe.Sizeof(Header{}) != HeaderSize {
		t.Errorf("Header is %d bytes, HeaderSize %d", unsafe.Sizeof(Header{}), HeaderSize)
	}
}

func TestHeaderLayout(t *testing.T) {
	if err := CheckLayout(bashObject(t), "ecap_hdr", Header{}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckLayoutFindsDifferences(t *testing.T) {
	obj := bashObject(t)
	type badOffset struct {
		TimestampNs   uint64
		PID, TID, UID uint32
		Kind, Len     uint16 // too small: offsets shift
		Flags         uint32
		Comm          [20]byte
	}
	type badName struct {
		TimestampNs         uint64
		PID, TID, UID       uint32
		Kind, Length, Flags uint32
		Comm                [16]byte
		CgroupID            uint64
	}
	type badSign struct {
		TimestampNs      int64
		PID, TID, UID    uint32
		Kind, Len, Flags uint32
		Comm             [16]byte
		CgroupID         uint64
	}
	type badArray struct {
		TimestampNs      uint64
		PID, TID, UID    uint32
		Kind, Len, Flags uint32
		Comm             [2]uint64
		CgroupID         uint64
	}
	for name, tt := range map[string]struct {
		v    any
		want string
	}{
		"offset": {badOffset{}, "size"},
		"name":   {badName{}, "Length"},
		"sign":   {badSign{}, "signedness"},
		"array":  {badArray{}, "comm"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckLayout(obj, "ecap_hdr", tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if err := CheckLayout(obj, "no_such_struct", Header{}); err == nil {
		t.Error("unknown struct accepted")
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(make([]byte, HeaderSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := DecodeHeader(raw)
		if (err != nil) != (len(raw) < HeaderSize) {
			t.Fatalf("len %d: error %v", len(raw), err)
		}
		if err == nil {
			var s Stamper
			s.FillEvent(&h, new(sdk.Event)) // must not panic either
		}
	})
}
