package gnutlsmod

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// AttrRecordFile is the config attribute naming the file the raw records
// are appended to.
const AttrRecordFile = "record_file"

// recorder appends every raw record the probes send to a file, each after
// its length (4 bytes, little-endian): inputs for decoder tests and fuzz
// corpora taken from real traffic. The file holds plaintext, so it is
// opened as every file ecaphost writes: through sdk/safefile (0600, no
// symbolic link, no file of another user, appended to). Decode's
// goroutine writes; Start and Close open and close.
type recorder struct {
	path   string // "" when not recording
	f      *os.File
	w      *bufio.Writer
	size   [4]byte // a record's length, as written before it
	logger hclog.Logger
}

// init takes the attribute's value and checks that the file may be
// written, as Append will check it at start.
func (r *recorder) init(path string, logger hclog.Logger) (sdk.Diagnostic, bool) {
	r.path, r.logger = "", logger
	if path == "" {
		return sdk.Diagnostic{}, true
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := safefile.Check(path); err != nil {
		return sdk.Errorf(AttrRecordFile, "Cannot write the record file", "%v", err), false
	}
	r.path = path
	return sdk.Diagnostic{}, true
}

// open opens the file, if recording.
func (r *recorder) open() error {
	if r.path == "" {
		return nil
	}
	f, err := safefile.Append(r.path)
	if err != nil {
		return err
	}
	r.f, r.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// write appends raw; after a write error, recording stops (logged once).
func (r *recorder) write(raw []byte) {
	if r.w == nil {
		return
	}
	binary.LittleEndian.PutUint32(r.size[:], uint32(len(raw)))
	_, err := r.w.Write(r.size[:])
	if err == nil {
		_, err = r.w.Write(raw)
	}
	if err != nil {
		r.logger.Error("writing the record file; recording stops", "path", r.path, "error", err)
		r.w = nil
	}
}

// flush writes what is buffered.
func (r *recorder) flush() {
	if r.w == nil {
		return
	}
	if err := r.w.Flush(); err != nil {
		r.logger.Error("writing the record file; recording stops", "path", r.path, "error", err)
		r.w = nil
	}
}

// close closes the file.
func (r *recorder) close() error {
	if r.f == nil {
		return nil
	}
	r.flush()
	err := r.f.Close()
	r.f, r.w = nil, nil
	return err
}

// Started opens the record file, if one is set (ebpfbase.Lifecycle).
func (m *Module) Started(*ebpfbase.Object) error { return m.rec.open() }

// RunEnded writes what the record file buffers (ebpfbase.Lifecycle).
func (m *Module) RunEnded() { m.rec.flush() }

// Closed closes the record file (ebpfbase.Lifecycle).
func (m *Module) Closed() error { return m.rec.close() }
