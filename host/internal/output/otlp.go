package output

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc/credentials"
)

// The OTLP output's bounds.
const (
	// recordOverhead is what one queued record is charged beyond its
	// payload and fields: the SDK's Record and the attribute slices.
	recordOverhead = 512
	// recordsPerMiB bounds how many records may wait per MiB of queue_mib
	// (the SDK's batch queue preallocates one slot per record it may hold).
	recordsPerMiB = 512
	// maxRequestBytes bounds the payload and fields sent in one export
	// request: a Collector's OTLP receiver takes 4 MiB messages by default.
	maxRequestBytes = 3 << 20
	// maxBodyBytes bounds one record's body, so that a record alone fits
	// a request: a longer payload is cut (at a character boundary when it
	// is text) and the record says its whole length in
	// ecaphost.payload_bytes; the file outputs keep it whole.
	maxBodyBytes = 2 << 20
	// batchQueueLen is how many batches wait for conversion to records.
	otlpBatchQueue = 256
	// otlpShutdownTimeout bounds the last export at exit.
	otlpShutdownTimeout = 10 * time.Second
	// otlpCheckTimeout bounds the connection check at start.
	otlpCheckTimeout = 3 * time.Second
)

// OTLP exports events as OTLP log records to an OpenTelemetry Collector,
// with the OpenTelemetry SDK's batch processor and the otlploggrpc or
// otlploghttp exporter (batching, retries with backoff), in the
// background. Its queue is bounded by bytes (queue_mib) and records:
// what does not fit is dropped at once, never waited for, and counted.
//
// A record's life: Write admits a batch or drops it (counted), a
// goroutine turns its events into records and emits them to the SDK, the
// batch processor hands them to the exporter in order, and the exporter
// delivers them or gives up after its retries (counted as dropped). A
// delivery that follows a loss emits a host.notice that says how many
// were lost. Methods are safe for concurrent use.
type OTLP struct {
	name     string
	endpoint string
	logger   hclog.Logger
	provider *sdklog.LoggerProvider
	otel     log.Logger

	queue   chan *shared
	done    chan struct{}
	cgroups cgroupCache // owned by run

	mu     sync.RWMutex // held for reading while sending on queue
	closed bool

	maxBytes, maxRecords int64
	// inBytes and inRecords are admitted and not yet delivered or lost.
	inBytes, inRecords atomic.Int64
	// charges are the byte charges of the records emitted to the SDK and
	// not yet exported, in emission order (the batch processor keeps it).
	chargeMu sync.Mutex
	charges  []int64

	written, dropped, bytes atomic.Uint64

	lossMu    sync.Mutex
	lostSince uint64    // dropped when the current loss began
	lossStart time.Time // zero while nothing is being lost
	lossErr   error     // the last export error of the current loss
	finished  bool      // Close has counted what was left
	notify    func(sdk.Event)

	// shutdownTimeout bounds the last export at Close.
	shutdownTimeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// OTLPOptions are what an OTLP output needs from the host.
type OTLPOptions struct {
	Version string       // service.version
	Logger  hclog.Logger // says when delivery fails and resumes
	// Cgroups turns events' cgroup ids into containers and pods; nil:
	// the records carry the id alone.
	Cgroups Cgroups
}

// OpenOTLP returns the output of the otlp block c. It fails on TLS files
// that do not load and on a Collector that answers but refuses the
// configured TLS (a wrong CA); a Collector that does not answer yet is
// only logged: events wait in the queue and are retried.
func OpenOTLP(c *config.OTLP, opts OTLPOptions) (*OTLP, error) {
	name := "otlp " + c.Endpoint
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("otlp")
	tlsConf, err := otlpTLS(c)
	if err != nil {
		return nil, fmt.Errorf("opening output %s: %w", name, err)
	}
	if err := checkCollector(c, tlsConf); err != nil {
		var netErr net.Error
		if !errors.As(err, &netErr) || isTLSError(err) {
			return nil, fmt.Errorf("opening output %s: %w", name, err)
		}
		logger.Warn("the Collector does not answer yet; events are queued and retried", "endpoint", c.Endpoint, "error", err)
	}
	exp, err := newOTLPExporter(c, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("opening output %s: %w", name, err)
	}
	host, _ := os.Hostname()
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("ecaphost"),
		semconv.ServiceVersion(opts.Version),
		semconv.HostName(host))

	queueBytes := int64(c.QueueMiB) << 20
	o := &OTLP{
		name:       name,
		endpoint:   c.Endpoint,
		logger:     logger,
		queue:      make(chan *shared, otlpBatchQueue),
		cgroups:    cgroupCache{src: opts.Cgroups},
		done:       make(chan struct{}),
		maxBytes:   queueBytes,
		maxRecords: int64(c.QueueMiB) * recordsPerMiB,

		shutdownTimeout: otlpShutdownTimeout,
	}
	// The exporters report through otel.Handle what countingExporter
	// reports already, with counts.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Debug("OpenTelemetry SDK", "error", err) }))
	counting := &countingExporter{next: exp, o: o, retryRefused: c.Protocol == config.ProtocolHTTP}
	bp := sdklog.NewBatchProcessor(counting,
		// Never smaller than what may be admitted: the processor drops
		// the oldest records of a full queue without saying which, so
		// admission (exact counts) is the only place anything is dropped.
		sdklog.WithMaxQueueSize(int(o.maxRecords)+1),
		sdklog.WithExportMaxBatchSize(512),
		sdklog.WithExportInterval(time.Second),
		// Longer than the exporter's retries of a Collector that is away.
		sdklog.WithExportTimeout(exportTimeout+15*time.Second))
	o.provider = sdklog.NewLoggerProvider(
		sdklog.WithResource(res),
		sdklog.WithProcessor(bp),
		sdklog.WithAttributeCountLimit(-1),
		sdklog.WithAttributeValueLengthLimit(-1),
		sdklog.WithAllowKeyDuplication())
	o.otel = o.provider.Logger("github.com/ecaphost/ecaphost/host", log.WithInstrumentationVersion(opts.Version))
	go o.run()
	return o, nil
}

// otlpTLS returns the TLS configuration of c, nil when insecure.
func otlpTLS(c *config.OTLP) (*tls.Config, error) {
	if c.Insecure {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if host, _, err := net.SplitHostPort(c.Endpoint); err == nil {
		tc.ServerName = host
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// checkCollector connects to the Collector once, with TLS when tc is set,
// so a certificate the configured CA does not sign is an error at start
// instead of a retry loop.
func checkCollector(c *config.OTLP, tc *tls.Config) error {
	d := &net.Dialer{Timeout: otlpCheckTimeout}
	if tc == nil {
		conn, err := d.Dial("tcp", c.Endpoint)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	tc = tc.Clone()
	if c.Protocol == config.ProtocolGRPC {
		tc.NextProtos = []string{"h2"}
	}
	conn, err := tls.DialWithDialer(d, "tcp", c.Endpoint, tc)
	if err != nil {
		return fmt.Errorf("TLS handshake with the Collector: %w", err)
	}
	return conn.Close()
}

func isTLSError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		alert            tls.AlertError
		recordHeader     tls.RecordHeaderError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &recordHeader)
}

// How the exporters retry a Collector that is away: from 1 s, doubling
// up to 15 s, for a minute (their defaults start at 5 s, and their 10 s
// export timeout cut the retries short: a Collector restarting for 5 s
// lost a batch). exportTimeout bounds one export, retries included.
var retryPolicy = struct {
	Enabled                                      bool
	InitialInterval, MaxInterval, MaxElapsedTime time.Duration
}{true, time.Second, 15 * time.Second, time.Minute}

const exportTimeout = time.Minute + 15*time.Second

func newOTLPExporter(c *config.OTLP, tc *tls.Config) (sdklog.Exporter, error) {
	ctx := context.Background()
	if c.Protocol == config.ProtocolHTTP {
		opts := []otlploghttp.Option{otlploghttp.WithEndpoint(c.Endpoint),
			otlploghttp.WithTimeout(exportTimeout), otlploghttp.WithRetry(otlploghttp.RetryConfig(retryPolicy))}
		if tc == nil {
			opts = append(opts, otlploghttp.WithInsecure())
		} else {
			opts = append(opts, otlploghttp.WithTLSClientConfig(tc))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(c.Headers))
		}
		return otlploghttp.New(ctx, opts...)
	}
	opts := []otlploggrpc.Option{otlploggrpc.WithEndpoint(c.Endpoint),
		otlploggrpc.WithTimeout(exportTimeout), otlploggrpc.WithRetry(otlploggrpc.RetryConfig(retryPolicy))}
	if tc == nil {
		opts = append(opts, otlploggrpc.WithInsecure())
	} else {
		opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(c.Headers) > 0 {
		opts = append(opts, otlploggrpc.WithHeaders(c.Headers))
	}
	return otlploggrpc.New(ctx, opts...)
}

// Name returns "otlp ENDPOINT".
func (o *OTLP) Name() string { return o.name }

// Written returns how many events the Collector acknowledged.
func (o *OTLP) Written() uint64 { return o.written.Load() }

// Dropped returns how many events were lost: not admitted to the full
// queue, or given up on by the exporter after its retries.
func (o *OTLP) Dropped() uint64 { return o.dropped.Load() }

// Bytes returns the payload and field bytes of the events delivered.
func (o *OTLP) Bytes() uint64 { return o.bytes.Load() }

// QueueDepth returns how many events wait to be delivered.
func (o *OTLP) QueueDepth() int { return int(o.inRecords.Load()) }

// Write queues a copy of batch, or drops and counts it when the queue
// cannot hold it. It never waits.
func (o *OTLP) Write(batch []sdk.Event) error {
	if len(batch) == 0 {
		return nil
	}
	s := &shared{events: cloneBatch(batch)}
	s.refs.Store(1)
	return o.enqueue(s)
}

func (o *OTLP) enqueue(s *shared) error {
	var charge int64
	for i := range s.events {
		charge += eventCharge(&s.events[i])
	}
	n := int64(len(s.events))
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		s.done()
		return ErrClosed
	}
	bytes, records := o.inBytes.Add(charge), o.inRecords.Add(n)
	if bytes > o.maxBytes || records > o.maxRecords {
		o.inBytes.Add(-charge)
		o.inRecords.Add(-n)
		o.lose(uint64(n), nil)
		s.done()
		return ErrDropped
	}
	select {
	case o.queue <- s:
		return nil
	default:
		o.inBytes.Add(-charge)
		o.inRecords.Add(-n)
		o.lose(uint64(n), nil)
		s.done()
		return ErrDropped
	}
}

// eventCharge is what ev counts against the queue's bytes.
func eventCharge(ev *sdk.Event) int64 {
	n := int64(recordOverhead + min(len(ev.Payload), maxBodyBytes) + len(ev.Comm) + len(ev.Module) + len(ev.Kind))
	for _, f := range ev.Fields {
		n += int64(len(f.Key) + len(f.Value))
	}
	return n
}

// run turns queued batches into records and emits them to the SDK.
func (o *OTLP) run() {
	defer close(o.done)
	ctx := context.Background()
	var rec log.Record
	var attrs []attribute.KeyValue
	for s := range o.queue {
		for i := range s.events {
			ev := &s.events[i]
			attrs = appendAttributes(attrs[:0], ev)
			attrs = appendCgroupAttributes(attrs, o.cgroups.lookup(ev))
			payload := ev.Payload
			if len(payload) > maxBodyBytes {
				payload = truncateBody(payload)
				if _, cut := ev.Field(fieldPayloadBytes); !cut { // else the field says the whole length
					attrs = append(attrs, attribute.Int(attrPayloadBytes, len(ev.Payload)))
				}
			}
			rec = log.Record{}
			rec.SetTimestamp(ev.Time)
			rec.SetObservedTimestamp(time.Now())
			rec.SetSeverity(log.SeverityInfo)
			rec.SetEventName(ev.Kind)
			rec.SetBody(body(payload))
			rec.AddAttributes(attrs...)
			o.chargeMu.Lock()
			o.charges = append(o.charges, eventCharge(ev))
			o.chargeMu.Unlock()
			o.otel.Emit(ctx, rec)
		}
		s.done()
	}
}

// countingExporter counts what the real exporter delivers or gives up on.
// The batch processor calls it from one goroutine, with records in the
// order they were emitted.
type countingExporter struct {
	next         sdklog.Exporter
	o            *OTLP
	retryRefused bool
}

func (c *countingExporter) Export(ctx context.Context, records []sdklog.Record) error {
	var errs []error
	for len(records) > 0 {
		n, charge := c.o.takeCharges(records)
		err := c.export(ctx, records[:n])
		c.o.exported(uint64(n), charge, err)
		if err != nil {
			errs = append(errs, err)
		}
		records = records[n:]
	}
	return errors.Join(errs...)
}

// export exports records. otlploghttp does not retry a connection the
// Collector refused (a Collector restarting), which otlploggrpc does: it
// is retried here on the same schedule (retryPolicy) until ctx ends.
func (c *countingExporter) export(ctx context.Context, records []sdklog.Record) error {
	delay, began := retryPolicy.InitialInterval, time.Now()
	for {
		err := c.next.Export(ctx, records)
		if err == nil || !c.retryRefused || !errors.Is(err, syscall.ECONNREFUSED) || time.Since(began)+delay > retryPolicy.MaxElapsedTime {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, retryPolicy.MaxInterval)
	}
}

func (c *countingExporter) Shutdown(ctx context.Context) error   { return c.next.Shutdown(ctx) }
func (c *countingExporter) ForceFlush(ctx context.Context) error { return c.next.ForceFlush(ctx) }

// takeCharges returns how many of records (at least one) go into the next
// request, at most maxRequestBytes of charges, and their charges.
func (o *OTLP) takeCharges(records []sdklog.Record) (int, int64) {
	o.chargeMu.Lock()
	defer o.chargeMu.Unlock()
	n, sum := 0, int64(0)
	for n < len(records) && n < len(o.charges) {
		c := o.charges[n]
		if n > 0 && sum+c > maxRequestBytes {
			break
		}
		sum += c
		n++
	}
	n = max(n, 1)
	o.charges = o.charges[min(n, len(o.charges)):]
	if len(o.charges) == 0 {
		o.charges = o.charges[:0:0] // let the array go
	}
	return n, sum
}

// exported accounts for n records that were delivered (err nil) or lost.
func (o *OTLP) exported(n uint64, charge int64, err error) {
	o.lossMu.Lock()
	if o.finished {
		// Close has counted everything left as dropped.
		o.lossMu.Unlock()
		return
	}
	o.inBytes.Add(-charge)
	o.inRecords.Add(-int64(n))
	o.lossMu.Unlock()
	if err != nil {
		o.lose(n, err)
		return
	}
	o.written.Add(n)
	o.bytes.Add(uint64(max(charge-int64(n)*recordOverhead, 0)))
	o.lossMu.Lock()
	start, since, lerr := o.lossStart, o.lostSince, o.lossErr
	o.lossStart, o.lossErr = time.Time{}, nil
	o.lossMu.Unlock()
	if start.IsZero() {
		return
	}
	lost := o.dropped.Load() - since
	o.logger.Info("delivery resumed", "endpoint", o.endpoint, "lost", lost, "since", start.UTC().Format(time.RFC3339))
	fields := []sdk.Field{
		{Key: "output", Value: o.name},
		{Key: "lost", Value: strconv.FormatUint(lost, 10)},
		{Key: "lost_since", Value: start.UTC().Format(time.RFC3339Nano)},
	}
	if lerr != nil {
		fields = append(fields, sdk.Field{Key: "error", Value: lerr.Error()})
	}
	ev := Notice(time.Now(), "ecaphost", "output delivery resumed", fields...)
	o.lossMu.Lock()
	notify := o.notify
	o.lossMu.Unlock()
	if notify == nil {
		notify = func(ev sdk.Event) { _ = o.Write([]sdk.Event{ev}) }
	}
	// Not from this goroutine: the batch processor's export loop runs it,
	// and Close may be waiting for that loop.
	go notify(ev)
}

// SetNotify makes the output hand its host.notice records (delivery
// resumed) to notify, the group of every output, instead of writing them
// to itself only.
func (o *OTLP) SetNotify(notify func(sdk.Event)) {
	o.lossMu.Lock()
	defer o.lossMu.Unlock()
	o.notify = notify
}

// lose counts n events lost, err saying why when the exporter gave up.
func (o *OTLP) lose(n uint64, err error) {
	prev := o.dropped.Add(n) - n
	o.lossMu.Lock()
	defer o.lossMu.Unlock()
	if o.lossStart.IsZero() {
		o.lossStart, o.lostSince = time.Now(), prev
		if err != nil {
			o.logger.Error("the Collector did not take events; they are lost and counted", "endpoint", o.endpoint, "events", n, "error", err)
		} else {
			o.logger.Warn("the OTLP queue is full; new events are dropped and counted until it drains", "endpoint", o.endpoint)
		}
	}
	if err != nil {
		o.lossErr = err
	}
}

// Close stops taking events, exports what is queued (for at most
// 10 s), and counts what could not be delivered as
// dropped. Calling it again returns the same error.
func (o *OTLP) Close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closed = true
		close(o.queue)
		o.mu.Unlock()
		<-o.done
		ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		defer cancel()
		err := o.provider.Shutdown(ctx)
		// What is still admitted now was never delivered.
		o.lossMu.Lock()
		o.finished = true
		if n := o.inRecords.Swap(0); n > 0 {
			o.dropped.Add(uint64(n))
		}
		o.lossMu.Unlock()
		if err != nil {
			o.closeErr = fmt.Errorf("closing %s: %w", o.name, err)
		}
	})
	return o.closeErr
}
