package pcapng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// blockSHB is the pcapng Section Header Block type; byteOrderMagic is the
// SHB's byte-order magic, written in the section's byte order.
const (
	blockSHB              = 0x0A0D0D0A
	byteOrderMagic uint32 = 0x1A2B3C4D
)

// ErrNotPcapng is wrapped by Resume's error for a file that does not hold
// whole pcapng blocks, to which nothing must be appended.
var ErrNotPcapng = errors.New("not a pcapng file")

// Resume readies f, opened for appending (write-only is enough), for a Writer to add a section
// after what an earlier writer left: it walks the blocks from the start
// and cuts a last block that the earlier writer could not finish (killed
// in the middle of a write), so that the new section follows whole
// blocks. It returns the size kept and the bytes cut. A file holding
// anything but pcapng blocks, or a damaged block before the last, is an
// error wrapping ErrNotPcapng and f is left as it was. An empty file is
// fine.
func Resume(f *os.File) (kept, cut int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("resuming pcapng file %s: %w", f.Name(), err)
	}
	size := st.Size()
	if size == 0 {
		return 0, 0, nil
	}
	// f may be open for writing only: read the same file through a
	// descriptor of its own.
	rf, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0, 0, fmt.Errorf("resuming pcapng file %s: reading it: %w", f.Name(), err)
	}
	defer rf.Close()
	r := windowReader{f: rf, size: size}
	var order binary.ByteOrder = binary.LittleEndian
	var off int64
	for off < size {
		hdr, err := r.at(off, 12)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			if off == 0 && !shbPrefix(r, size) {
				return 0, 0, fmt.Errorf("resuming %s: it does not start with a section header block: %w", f.Name(), ErrNotPcapng)
			}
			break // a header cut short
		}
		if err != nil {
			return 0, 0, fmt.Errorf("resuming pcapng file %s: %w", f.Name(), err)
		}
		if typ := binary.LittleEndian.Uint32(hdr); typ == blockSHB {
			switch byteOrderMagic {
			case binary.LittleEndian.Uint32(hdr[8:]):
				order = binary.LittleEndian
			case binary.BigEndian.Uint32(hdr[8:]):
				order = binary.BigEndian
			default:
				return 0, 0, fmt.Errorf("resuming %s: bad byte-order magic at offset %d: %w", f.Name(), off, ErrNotPcapng)
			}
		} else if off == 0 {
			return 0, 0, fmt.Errorf("resuming %s: it does not start with a section header block: %w", f.Name(), ErrNotPcapng)
		}
		n := int64(order.Uint32(hdr[4:]))
		if n < 12 || n%4 != 0 {
			return 0, 0, fmt.Errorf("resuming %s: block of length %d at offset %d: %w", f.Name(), n, off, ErrNotPcapng)
		}
		if off+n > size {
			break // the last block, cut short
		}
		tail, err := r.at(off+n-4, 4)
		if err != nil {
			return 0, 0, fmt.Errorf("resuming pcapng file %s: %w", f.Name(), err)
		}
		if int64(order.Uint32(tail)) != n {
			return 0, 0, fmt.Errorf("resuming %s: block at offset %d ends with length %d, starts with %d: %w",
				f.Name(), off, order.Uint32(tail), n, ErrNotPcapng)
		}
		off += n
	}
	if off < size {
		if err := f.Truncate(off); err != nil {
			return 0, 0, fmt.Errorf("resuming %s: cutting an unfinished block at offset %d: %w", f.Name(), off, err)
		}
	}
	return off, size - off, nil
}

// shbPrefix tells whether the size (< 12) bytes of a file are the start
// of a section header block.
func shbPrefix(r windowReader, size int64) bool {
	b, err := r.at(0, int(size))
	if err != nil {
		return false
	}
	var shb [12]byte
	binary.LittleEndian.PutUint32(shb[:], blockSHB)
	return bytes.Equal(b[:min(4, len(b))], shb[:min(4, len(b))])
}

// windowReader reads small pieces of a file through a window of it, so
// that walking many small blocks takes few system calls.
type windowReader struct {
	f     *os.File
	size  int64
	start int64
	buf   []byte
}

const windowSize = 256 << 10

// at returns n bytes at off, valid until the next call; io.ErrUnexpectedEOF
// when the file ends first.
func (r *windowReader) at(off int64, n int) ([]byte, error) {
	if off+int64(n) > r.size {
		return nil, io.ErrUnexpectedEOF
	}
	if off < r.start || off+int64(n) > r.start+int64(len(r.buf)) {
		if r.buf == nil {
			r.buf = make([]byte, windowSize)
		}
		r.start = off
		m, err := r.f.ReadAt(r.buf[:cap(r.buf)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		r.buf = r.buf[:m]
		if m < n {
			return nil, io.ErrUnexpectedEOF
		}
	}
	i := off - r.start
	return r.buf[i : i+int64(n)], nil
}
