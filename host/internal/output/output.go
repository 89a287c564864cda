package output

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
)

// Defaults of Options.
const (
	DefaultQueueLen = 64
	DefaultMaxWait  = time.Second
)

const (
	bufferSize = 64 << 10
	// maxKeptBuffer is the largest formatting buffer kept between events.
	maxKeptBuffer = 1 << 20
)

var (
	// ErrDropped is returned by Write when the queue stayed full for
	// Options.MaxWait: the batch was dropped and counted in Dropped.
	ErrDropped = errors.New("output queue full, batch dropped")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("output closed")
)

// Options tune a Writer. The zero value is fine.
type Options struct {
	// QueueLen is how many batches may wait to be written; 0 means
	// DefaultQueueLen.
	QueueLen int
	// MaxWait is how long Write waits for room in a full queue before it
	// drops the batch; 0 means DefaultMaxWait.
	MaxWait time.Duration
}

// Writer writes batches of events in one format to one sink from its own
// goroutine. Write, Dropped, Written and Err are safe for concurrent use,
// also with Close.
type Writer struct {
	name    string
	enc     *Encoder
	sink    io.Writer
	closer  io.Closer // nil when the Writer does not own sink
	bw      *bufio.Writer
	queue   chan []sdk.Event
	maxWait time.Duration
	done    chan struct{}

	mu     sync.RWMutex // held for reading while sending on queue
	closed bool

	written, dropped atomic.Uint64
	pending          uint64 // events in bw; owned by run

	errMu sync.Mutex
	err   error // the first write error

	closeOnce sync.Once
	closeErr  error
}

// New returns a Writer writing to w in format f. name identifies it in
// errors ("stdout", "file /var/log/x.jsonl"). The Writer never closes w.
func New(name string, w io.Writer, f Format, opts Options) (*Writer, error) {
	enc, err := NewEncoder(f)
	if err != nil {
		return nil, fmt.Errorf("creating output %s: %w", name, err)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	o := &Writer{
		name:    name,
		enc:     enc,
		sink:    w,
		bw:      bufio.NewWriterSize(w, bufferSize),
		queue:   make(chan []sdk.Event, opts.QueueLen),
		maxWait: opts.MaxWait,
		done:    make(chan struct{}),
	}
	go o.run()
	return o, nil
}

// Open returns the Writer of the output block o, with default Options:
// one writing to stdout (which Close flushes but leaves open) or to the
// file o.Path (see OpenFile).
func Open(o config.Output, stdout io.Writer) (*Writer, error) {
	switch o.Kind {
	case config.OutputStdout:
		return New("stdout", stdout, Format(o.Format), Options{})
	case config.OutputFile:
		return OpenFile(o.Path, Format(o.Format), Options{})
	}
	return nil, fmt.Errorf("opening output: unknown kind %q", o.Kind)
}

// OpenFile returns a Writer appending to the file path, which it creates
// with mode 0600 when it does not exist. The directory must exist. An
// existing regular file readable or writable by group or others is
// chmod-ed to 0600 first, since captured payloads hold secrets; when that
// is not permitted, OpenFile fails. Close closes the file.
func OpenFile(path string, f Format, opts Options) (*Writer, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, fmt.Errorf("opening output file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("opening output file %s: directory: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("opening output file %s: %s is not a directory", path, dir)
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening output file: %w", err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("opening output file: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		if err := fh.Chmod(0o600); err != nil {
			fh.Close()
			return nil, fmt.Errorf("restricting output file %s to mode 0600: %w", path, err)
		}
	}
	o, err := New("file "+path, fh, f, opts)
	if err != nil {
		fh.Close()
		return nil, err
	}
	o.closer = fh
	return o, nil
}

// Name returns the name the Writer was created with.
func (o *Writer) Name() string { return o.name }

// Write queues a copy of batch: the caller may reuse batch, its payloads
// and fields as soon as Write returns. When the queue stays full for
// Options.MaxWait, Write drops the batch, counts its events in Dropped and
// returns ErrDropped. After Close it returns ErrClosed.
func (o *Writer) Write(batch []sdk.Event) error {
	if len(batch) == 0 {
		return nil
	}
	return o.enqueue(cloneBatch(batch))
}

// enqueue queues batch, which the Writer may keep and only reads.
func (o *Writer) enqueue(batch []sdk.Event) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return ErrClosed
	}
	select {
	case o.queue <- batch:
		return nil
	default:
	}
	t := time.NewTimer(o.maxWait)
	defer t.Stop()
	select {
	case o.queue <- batch:
		return nil
	case <-t.C:
		o.dropped.Add(uint64(len(batch)))
		return ErrDropped
	}
}

// Dropped returns how many events were lost: dropped from a full queue or
// lost to a write error (counted per buffer: after an error, every event
// not yet flushed counts as lost).
func (o *Writer) Dropped() uint64 { return o.dropped.Load() }

// Written returns how many events were flushed to the sink.
func (o *Writer) Written() uint64 { return o.written.Load() }

// Err returns the first error writing to the sink, or nil. The Writer
// goes on after an error, counting what it lost in Dropped.
func (o *Writer) Err() error {
	o.errMu.Lock()
	defer o.errMu.Unlock()
	return o.err
}

// Close stops taking batches, writes and flushes everything queued, and
// closes the sink when the Writer owns it. It returns the first write
// error, if any, joined with the error closing the sink. Calling it again
// returns the same error.
func (o *Writer) Close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closed = true
		close(o.queue)
		o.mu.Unlock()
		<-o.done
		err := o.Err()
		if o.closer != nil {
			if cerr := o.closer.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("closing %s: %w", o.name, cerr))
			}
		}
		o.closeErr = err
	})
	return o.closeErr
}

func (o *Writer) run() {
	defer close(o.done)
	var buf []byte
	for batch := range o.queue {
		buf = o.writeBatch(buf, batch)
		if cap(buf) > maxKeptBuffer {
			buf = nil
		}
		if len(o.queue) == 0 {
			o.flush()
		}
	}
	o.flush()
}

func (o *Writer) writeBatch(buf []byte, batch []sdk.Event) []byte {
	for i := range batch {
		var err error
		buf, err = o.enc.Append(buf[:0], &batch[i])
		if err != nil {
			o.fail(fmt.Errorf("encoding %s event of %s: %w", batch[i].Kind, batch[i].Module, err))
			o.dropped.Add(1)
			continue
		}
		o.pending++
		if _, err := o.bw.Write(buf); err != nil {
			o.lost(err)
			o.dropped.Add(uint64(len(batch) - i - 1))
			return buf
		}
	}
	return buf
}

// flush writes the buffer out; the events in it count as written.
func (o *Writer) flush() {
	if err := o.bw.Flush(); err != nil {
		o.lost(err)
		return
	}
	o.written.Add(o.pending)
	o.pending = 0
}

// lost records a write error: the events in the buffer count as dropped.
func (o *Writer) lost(err error) {
	o.fail(fmt.Errorf("writing to %s: %w", o.name, err))
	o.bw.Reset(o.sink)
	o.dropped.Add(o.pending)
	o.pending = 0
}

func (o *Writer) fail(err error) {
	o.errMu.Lock()
	defer o.errMu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// cloneBatch copies batch with three allocations: the events, all
// payloads, all fields.
func cloneBatch(batch []sdk.Event) []sdk.Event {
	var np, nf int
	for i := range batch {
		np += len(batch[i].Payload)
		nf += len(batch[i].Fields)
	}
	out := make([]sdk.Event, len(batch))
	payloads := make([]byte, 0, np)
	fields := make([]sdk.Field, 0, nf)
	for i := range batch {
		ev := batch[i]
		n := len(payloads)
		payloads = append(payloads, ev.Payload...)
		ev.Payload = payloads[n:len(payloads):len(payloads)]
		n = len(fields)
		fields = append(fields, ev.Fields...)
		ev.Fields = fields[n:len(fields):len(fields)]
		out[i] = ev
	}
	return out
}

// Group fans batches out to several outputs. It copies each batch once
// and shares the copy, which the outputs only read.
type Group []*Writer

// Write queues a copy of batch on every output of g. It returns the errors
// of the outputs that dropped the batch or are closed, each naming its
// output; errors.Is finds ErrDropped and ErrClosed in them.
func (g Group) Write(batch []sdk.Event) error {
	if len(batch) == 0 || len(g) == 0 {
		return nil
	}
	shared := cloneBatch(batch)
	var errs []error
	for _, o := range g {
		if err := o.enqueue(shared); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every output of g and joins their errors.
func (g Group) Close() error {
	var errs []error
	for _, o := range g {
		errs = append(errs, o.Close())
	}
	return errors.Join(errs...)
}
