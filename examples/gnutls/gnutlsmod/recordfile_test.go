package gnutlsmod

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// TestRecordFile: the raw records are appended to record_file after
// their length, in a file of mode 0600, after what an earlier run wrote.
func TestRecordFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.bin")
	raws := [][]byte{rawRecord(t, record(1, tlsrecord.DirEgress, "GET / HTTP/1.1\r\n\r\n")), rawRecord(t, record(2, tlsrecord.DirIngress, "HTTP/1.1 200 OK\r\n\r\n"))}
	var want []byte
	for run, raw := range raws {
		m := New()
		if d, ok := m.rec.init(path, hclog.NewNullLogger()); !ok {
			t.Fatalf("run %d: %s: %s", run, d.Summary, d.Detail)
		}
		if err := m.Started(nil); err != nil {
			t.Fatal(err)
		}
		var ev sdk.Event
		if err := m.Decode("", raw, &ev); err != nil {
			t.Fatal(err)
		}
		m.RunEnded()
		if err := m.Closed(); err != nil {
			t.Fatal(err)
		}
		want = binary.LittleEndian.AppendUint32(want, uint32(len(raw)))
		want = append(want, raw...)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the record file holds %d bytes (%v), want the two records after their lengths (%d bytes)", len(got), err, len(want))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

// TestRecordFileRefusesALink: Init refuses a record_file that is a
// symbolic link, on the attribute, before looking for libgnutls.
func TestRecordFileRefusesALink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "records.bin")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	cfg := sdk.Config{AttrRecordFile: link, AttrLibgnutls: ""}
	err := New().Init(context.Background(), hclog.NewNullLogger(), sdk.Settings{Config: cfg}, nil)
	var ds sdk.Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 || ds[0].Attribute != AttrRecordFile || !strings.Contains(ds[0].Detail, "symbolic link") {
		t.Errorf("Init: %v, want one diagnostic on %s saying symbolic link", err, AttrRecordFile)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); err == nil {
		t.Errorf("the link's target was created")
	}
}
