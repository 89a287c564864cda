package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"google.golang.org/protobuf/proto"

	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// The data channel (module API version 2). The host creates a socket pair
// for each plugin process it launches and passes one end as a file
// descriptor, named in EnvDataFD. When Configure's Transport says so, the
// plugin writes its batches there instead of on the Events stream: one
// write of a frame per batch, where gRPC cut every batch into 16 KiB
// HTTP/2 frames, each handed between goroutines and acknowledged by window
// updates, and copied it twice more (make bench: 5% of the capture's
// throughput). The Events call stays open meanwhile; it ends (nil) after
// the plugin wrote the end frame, or with the plugin's error.
//
// A frame is, little-endian:
//
//	u32  length of the EventBatch that follows (sequence, losses)
//	u32  length of the packed records that follow it (see packed.go)
//	...  the EventBatch, protobuf
//	...  the packed records
//
// A frame of two zero lengths ends the channel.

// EnvDataFD names the environment variable carrying the plugin's end of
// the data channel.
const EnvDataFD = "ECAPHOST_DATA_FD"

// Bounds a host puts on one frame; a frame beyond them is a broken plugin.
const (
	MaxFrameMeta   = 1 << 20
	MaxFramePacked = 64 << 20
	frameHeader    = 8
	// dataSocketBuffer is asked of the kernel for each end of the data
	// channel: a few batches in flight.
	dataSocketBuffer = 4 << 20
)

// NewDataChannel creates a data channel for one plugin process: the host's
// end, and the file to pass the plugin as its file descriptor 3
// (exec.Cmd.ExtraFiles[0]; set EnvDataFD=3), which the host closes once
// the process started.
func NewDataChannel() (host net.Conn, plugin *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("data channel: %w", err)
	}
	for _, fd := range fds {
		// Best effort: the default buffers work, only slower.
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, dataSocketBuffer)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, dataSocketBuffer)
	}
	hf := os.NewFile(uintptr(fds[0]), "ecaphost-data-host")
	defer hf.Close()
	host, err = net.FileConn(hf)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("data channel: %w", err)
	}
	return host, os.NewFile(uintptr(fds[1]), "ecaphost-data"), nil
}

// PluginDataChannel returns the plugin's end of the data channel named by
// EnvDataFD, nil when the host passed none. It unsets the variable and
// keeps the descriptor from the plugin's own children.
func PluginDataChannel() (net.Conn, error) {
	v, ok := os.LookupEnv(EnvDataFD)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvDataFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not a file descriptor above 2", EnvDataFD, v)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", EnvDataFD, fd, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, fmt.Errorf("%s=%d is not a socket", EnvDataFD, fd)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "ecaphost-data")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s=%d: %w", EnvDataFD, fd, err)
	}
	return c, nil
}

// FrameWriter writes batches to a data channel.
type FrameWriter struct {
	W    io.Writer
	head []byte
	meta pb.EventBatch
}

// write sends b (its sequence, losses and packed records) as one frame.
func (fw *FrameWriter) Write(b *pb.EventBatch) error {
	fw.meta.Sequence, fw.meta.Losses = b.GetSequence(), b.GetLosses()
	var room [frameHeader]byte // the lengths, filled in below
	head, err := proto.MarshalOptions{}.MarshalAppend(append(fw.head[:0], room[:]...), &fw.meta)
	fw.meta.Losses = nil
	if err != nil {
		return fmt.Errorf("encoding a frame: %w", err)
	}
	fw.head = head
	binary.LittleEndian.PutUint32(head, uint32(len(head)-frameHeader))
	binary.LittleEndian.PutUint32(head[4:], uint32(len(b.GetPacked())))
	bufs := net.Buffers{head, b.GetPacked()}
	_, err = bufs.WriteTo(fw.W)
	return err
}

// end writes the frame that ends the channel.
func (fw *FrameWriter) End() error {
	_, err := fw.W.Write(make([]byte, frameHeader))
	return err
}

// ErrFrame is wrapped by the errors of frames that break the framing.
var ErrFrame = errors.New("malformed frame")

// FrameReader reads frames from a data channel into one reused batch: the
// batch and its packed records are valid until the next call.
type FrameReader struct {
	r      *bufio.Reader
	raw    syscall.RawConn // of the channel, to ask for its backlog; nil if none
	Limit  int             // most bytes that can wait before the plugin blocks; 0: unknown
	head   [frameHeader]byte
	meta   []byte
	packed []byte
	batch  pb.EventBatch
}

func NewFrameReader(r io.Reader) *FrameReader {
	fr := &FrameReader{r: bufio.NewReaderSize(r, FrameReadAhead)}
	if sc, ok := r.(syscall.Conn); ok {
		fr.raw, _ = sc.SyscallConn()
	}
	if fr.raw != nil {
		// A plugin's writes block once its end's send buffer is full.
		// NewDataChannel sizes both ends alike, so this end's size (as
		// the kernel set it: twice what was asked) stands for the
		// plugin's.
		sndbuf := 0
		_ = fr.raw.Control(func(fd uintptr) {
			if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF); err == nil {
				sndbuf = v
			}
		})
		if sndbuf > 0 {
			fr.Limit = sndbuf + FrameReadAhead
		}
	}
	return fr
}

// FrameReadAhead is how much the host's end buffers ahead of the decoder.
const FrameReadAhead = 256 << 10

// backlog returns the bytes read ahead and still waiting in the socket.
func (fr *FrameReader) Backlog() int {
	n := fr.r.Buffered()
	if fr.raw != nil {
		var queued int32
		_ = fr.raw.Control(func(fd uintptr) {
			// FIONREAD (TIOCINQ): bytes queued for reading.
			_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&queued)))
		})
		n += int(queued)
	}
	return n
}

// next returns the next batch, or nil at the end frame.
func (fr *FrameReader) Next() (*pb.EventBatch, error) {
	if _, err := io.ReadFull(fr.r, fr.head[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF // the plugin went away without the end frame
		}
		return nil, err
	}
	nm, np := binary.LittleEndian.Uint32(fr.head[:]), binary.LittleEndian.Uint32(fr.head[4:])
	if nm == 0 && np == 0 {
		return nil, nil
	}
	if nm > MaxFrameMeta || np > MaxFramePacked {
		return nil, fmt.Errorf("%w: %d bytes of batch and %d of records, over the bounds of %d and %d", ErrFrame, nm, np, MaxFrameMeta, MaxFramePacked)
	}
	fr.meta = grow(fr.meta, int(nm))
	if _, err := io.ReadFull(fr.r, fr.meta); err != nil {
		return nil, fmt.Errorf("%w: cut short: %w", ErrFrame, err)
	}
	fr.packed = grow(fr.packed, int(np))
	if _, err := io.ReadFull(fr.r, fr.packed); err != nil {
		return nil, fmt.Errorf("%w: cut short: %w", ErrFrame, err)
	}
	fr.batch.Reset()
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fr.meta, &fr.batch); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	if len(fr.batch.Events) > 0 || len(fr.batch.Packed) > 0 {
		return nil, fmt.Errorf("%w: events inside the frame's batch", ErrFrame)
	}
	fr.batch.Packed = fr.packed
	if cap(fr.packed) > maxKeptFrame {
		fr.packed = nil // one huge frame must not pin its memory
	}
	return &fr.batch, nil
}

// maxKeptFrame bounds the frame buffer kept between frames.
const maxKeptFrame = 8 << 20

// grow returns b with length n, reusing its array when it is large enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
