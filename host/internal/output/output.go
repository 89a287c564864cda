package output

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/safefile"
	"github.com/hashicorp/go-hclog"
)

// Defaults of Options.
const (
	DefaultQueueLen = 64
	DefaultMaxWait  = time.Second
)

const (
	// writeChunk is how much formatted output a Writer gathers before it
	// writes to its sink (sooner when its queue runs empty).
	writeChunk = 512 << 10
	// maxKeptBuffer is the largest formatting buffer kept between writes:
	// one huge event must not pin its memory.
	maxKeptBuffer = 4 << 20
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
	// Logger, when set, is told when writing to the sink starts failing
	// and when it works again (once each, with counts).
	Logger hclog.Logger
	// Rotate, for a file, rotates it by size or age (nil: never).
	Rotate *config.Rotate
	// Cgroups turns events' cgroup ids into paths and containers; nil
	// writes the ids alone.
	Cgroups Cgroups
}

// Writer writes batches of events in one format to one sink from its own
// goroutine. Write, Dropped, Written and Err are safe for concurrent use,
// also with Close.
type Writer struct {
	name    string
	enc     *Encoder
	sink    io.Writer
	closer  io.Closer // nil when the Writer does not own sink
	queue   chan *shared
	maxWait time.Duration
	done    chan struct{}

	mu     sync.RWMutex // held for reading while sending on queue
	closed bool

	written, dropped, bytes atomic.Uint64
	queued                  atomic.Int64 // events queued, not yet formatted
	// Owned by run: the end offset in the buffer of each event formatted
	// but not yet written, and the state of a failing sink.
	ends    []int
	failing *failure
	logger  hclog.Logger

	errMu sync.Mutex
	err   error // the first write error

	closeOnce sync.Once
	closeErr  error
}

// New returns a Writer writing to w in format f. name identifies it in
// errors ("stdout", "file /var/log/x.jsonl"). The Writer never closes w.
func New(name string, w io.Writer, f Format, opts Options) (*Writer, error) {
	enc, err := NewEncoder(f, opts.Cgroups)
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
		queue:   make(chan *shared, opts.QueueLen),
		maxWait: opts.MaxWait,
		done:    make(chan struct{}),
		logger:  opts.Logger,
	}
	go o.run()
	return o, nil
}

// Open returns the Writer of the output block o: one writing to stdout
// (which Close flushes but leaves open) or to the file o.Path (see
// OpenFile), with opts (the block's rotation added).
func Open(o config.Output, stdout io.Writer, opts Options) (*Writer, error) {
	switch o.Kind {
	case config.OutputStdout:
		return New("stdout", stdout, Format(o.Format), opts)
	case config.OutputFile:
		opts.Rotate = o.Rotate
		return OpenFile(o.Path, Format(o.Format), opts)
	}
	return nil, fmt.Errorf("opening output: unknown kind %q", o.Kind)
}

// OpenFile returns a Writer appending to the file path through
// safefile.Append: a new file is created with mode 0600; an existing one
// must be a regular file of root or the running user that group and others
// cannot write (one they can read is narrowed to 0600); a symbolic link,
// FIFO or device is refused, as is a directory others can write to unless
// sticky and root's. The directory must exist. Close closes the file.
func OpenFile(path string, f Format, opts Options) (*Writer, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, fmt.Errorf("opening output file %s: %w", path, err)
	}
	fh, err := openFileSink(path, opts.Rotate)
	if err != nil {
		return nil, fmt.Errorf("opening output file: %w", err)
	}
	o, err := New("file "+path, fh, f, opts)
	if err != nil {
		fh.Close()
		return nil, err
	}
	o.closer = fh
	return o, nil
}

// Check reports what Open would refuse about the output block o, without
// creating or changing anything (for validate).
func Check(o config.Output) error {
	switch o.Kind {
	case config.OutputStdout, config.OutputOTLP:
		return nil // the OTLP block is checked as it is parsed
	case config.OutputFile:
		if err := safefile.Check(o.Path); err != nil {
			return fmt.Errorf("output file: %w", err)
		}
		return nil
	}
	return fmt.Errorf("checking output: unknown kind %q", o.Kind)
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
	s := &shared{events: cloneBatch(batch)}
	s.refs.Store(1)
	return o.enqueue(s)
}

// shared is a batch queued on one or more Writers, which only read it.
// The last to finish with it calls release, if set.
type shared struct {
	events  []sdk.Event
	refs    atomic.Int32
	release func()
}

func (s *shared) done() {
	if s.refs.Add(-1) == 0 && s.release != nil {
		s.release()
	}
}

// enqueue queues s, which the Writer only reads; it calls s.done itself
// when it does not queue it.
func (o *Writer) enqueue(s *shared) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		s.done()
		return ErrClosed
	}
	n := int64(len(s.events))
	o.queued.Add(n)
	select {
	case o.queue <- s:
		return nil
	default:
	}
	t := time.NewTimer(o.maxWait)
	defer t.Stop()
	select {
	case o.queue <- s:
		return nil
	case <-t.C:
		o.queued.Add(-n)
		o.dropped.Add(uint64(n))
		s.done()
		return ErrDropped
	}
}

// Bytes returns how many bytes were written to the sink.
func (o *Writer) Bytes() uint64 { return o.bytes.Load() }

// QueueDepth returns how many events wait to be formatted.
func (o *Writer) QueueDepth() int { return int(o.queued.Load()) }

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

// run formats the queued batches into one buffer, written to the sink
// when it holds writeChunk bytes or the queue runs empty.
func (o *Writer) run() {
	defer close(o.done)
	buf := make([]byte, 0, writeChunk+writeChunk/4)
	for s := range o.queue {
		buf = o.writeBatch(buf, s.events)
		o.queued.Add(-int64(len(s.events)))
		s.done()
		if len(o.queue) == 0 {
			buf = o.flush(buf)
		}
	}
	o.flush(buf)
	if o.failing != nil && o.logger != nil {
		o.logger.Error("output still failing when closed", "output", o.name, "failed_for", time.Since(o.failing.start).Round(time.Millisecond), "events_dropped", o.failing.dropped, "error", o.failing.err)
	}
}

func (o *Writer) writeBatch(buf []byte, batch []sdk.Event) []byte {
	for i := range batch {
		n := len(buf)
		var err error
		buf, err = o.enc.Append(buf, &batch[i])
		if err != nil {
			buf = buf[:n]
			o.fail(fmt.Errorf("encoding %s event of %s: %w", batch[i].Kind, batch[i].Module, err))
			o.dropped.Add(1)
			continue
		}
		o.ends = append(o.ends, len(buf))
		if len(buf) >= writeChunk {
			buf = o.flush(buf)
		}
	}
	return buf
}

// failure is a sink failing to take writes since start.
type failure struct {
	start   time.Time
	err     error
	dropped uint64
}

// flush writes buf out. The events wholly written count as written; the
// others as dropped, and an event cut by a short write (a full disk) is
// removed from a file again, so that every event in it is whole. It
// returns buf emptied for reuse.
func (o *Writer) flush(buf []byte) []byte {
	if len(buf) > 0 {
		n, err := o.sink.Write(buf)
		whole := 0
		for whole < len(o.ends) && o.ends[whole] <= n {
			whole++
		}
		o.written.Add(uint64(whole))
		if err != nil {
			end := 0
			if whole > 0 {
				end = o.ends[whole-1]
			}
			kept := n
			if n > end {
				if cerr := o.cut(n - end); cerr != nil {
					err = errors.Join(err, cerr)
				} else {
					kept = end
				}
			}
			o.bytes.Add(uint64(kept))
			o.writeFailed(err, uint64(len(o.ends)-whole))
		} else {
			o.bytes.Add(uint64(n))
			o.writeWorks()
		}
		o.ends = o.ends[:0]
	}
	if cap(buf) > maxKeptBuffer {
		return make([]byte, 0, writeChunk+writeChunk/4)
	}
	return buf[:0]
}

// cut removes the last n bytes written, the start of an event a short
// write cut, from a sink that is a file.
func (o *Writer) cut(n int) error {
	f, ok := o.sink.(interface {
		Stat() (os.FileInfo, error)
		Truncate(int64) error
	})
	if !ok {
		return fmt.Errorf("%d bytes of a cut event stay in %s", n, o.name)
	}
	st, err := f.Stat()
	if err == nil && st.Mode().IsRegular() {
		err = f.Truncate(st.Size() - int64(n))
	}
	if err != nil {
		return fmt.Errorf("removing the %d bytes of a cut event from %s: %w", n, o.name, err)
	}
	return nil
}

// writeFailed counts dropped events lost to a write error, and logs the
// first error of a run of them.
func (o *Writer) writeFailed(err error, dropped uint64) {
	err = fmt.Errorf("writing to %s: %w", o.name, err)
	o.fail(err)
	o.dropped.Add(dropped)
	if o.failing == nil {
		o.failing = &failure{start: time.Now(), err: err}
		if o.logger != nil {
			o.logger.Error("output failing: events are dropped (and counted) until it takes writes again", "output", o.name, "error", err, "written_so_far", o.written.Load())
		}
	}
	o.failing.dropped += dropped
}

// writeWorks ends a run of write errors, logging what it cost.
func (o *Writer) writeWorks() {
	if o.failing == nil {
		return
	}
	if o.logger != nil {
		o.logger.Info("output writing again", "output", o.name, "failed_for", time.Since(o.failing.start).Round(time.Millisecond), "events_dropped", o.failing.dropped)
	}
	o.failing = nil
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

// Output is one output of a Group: a Writer or an OTLP exporter. Every
// method is safe for concurrent use.
type Output interface {
	// Name identifies the output in errors and summaries.
	Name() string
	// Written, Dropped and Bytes count what the output delivered and lost.
	Written() uint64
	Dropped() uint64
	Bytes() uint64
	// QueueDepth is how many events wait in the output.
	QueueDepth() int
	// Close delivers what is queued and releases the output.
	Close() error
	// enqueue queues s, which the output only reads; it calls s.done
	// itself when it does not queue it.
	enqueue(s *shared) error
}

// Group fans batches out to several outputs, which share each batch and
// only read it.
type Group []Output

// Write queues a copy of batch on every output of g. It returns the errors
// of the outputs that dropped the batch or are closed, each naming its
// output; errors.Is finds ErrDropped and ErrClosed in them.
func (g Group) Write(batch []sdk.Event) error {
	if len(batch) == 0 || len(g) == 0 {
		return nil
	}
	return g.share(cloneBatch(batch), nil)
}

// WriteOwned queues batch itself on every output of g, without a copy:
// the caller must leave batch, its payloads and fields alone until g
// calls release (once, when every output is done with it, from an
// output's goroutine; at once when g is empty). Errors are as for Write.
func (g Group) WriteOwned(batch []sdk.Event, release func()) error {
	if len(batch) == 0 || len(g) == 0 {
		if release != nil {
			release()
		}
		return nil
	}
	return g.share(batch, release)
}

func (g Group) share(batch []sdk.Event, release func()) error {
	s := &shared{events: batch, release: release}
	s.refs.Store(int32(len(g)))
	var errs []error
	for _, o := range g {
		if err := o.enqueue(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.Name(), err))
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
