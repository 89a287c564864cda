package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// Client is the host's side of the contract: it drives one module plugin
// over gRPC and presents it with SDK types. The host and the harness use
// it; module authors do not need it. Methods may be called from several
// goroutines, but Events runs at most once at a time.
type Client struct {
	rpc    pb.ModuleClient
	module string   // name from Describe, stamped on every event
	data   net.Conn // the host's end of the data channel, if any
	// useData: Configure asked for batches on data.
	useData bool
}

// SetDataChannel gives the client the host's end of the plugin's data
// channel (see NewDataChannel). Configure then asks a plugin of API
// version 2 or later to send its batches there. Call it before Configure.
func (c *Client) SetDataChannel(conn net.Conn) { c.data = conn }

// Describe asks the plugin who it is.
func (c *Client) Describe(ctx context.Context) (sdk.Info, error) {
	r, err := c.rpc.Describe(ctx, &pb.DescribeRequest{HostApiVersions: sdk.APIVersions})
	if err != nil {
		return sdk.Info{}, fmt.Errorf("describe: %w", err)
	}
	info, err := infoFromProto(r)
	if err != nil {
		return sdk.Info{}, fmt.Errorf("describe: plugin %q sent a bad config schema: %w", r.GetName(), err)
	}
	if info.Name == "" {
		return sdk.Info{}, errors.New("describe: plugin sent no name")
	}
	c.module = info.Name
	return info, nil
}

// ErrNoCommonAPIVersion is wrapped by Negotiate's error.
var ErrNoCommonAPIVersion = errors.New("no common module API version")

// Negotiate returns the highest API version both lists hold, or an error
// naming both lists.
func Negotiate(host, plugin []uint32) (uint32, error) {
	var best uint32
	for _, v := range plugin {
		if slices.Contains(host, v) && v > best {
			best = v
		}
	}
	if best == 0 {
		rebuild := "a newer ecaphost"
		if len(plugin) == 0 || slices.Max(plugin) < slices.Max(host) {
			rebuild = fmt.Sprintf("rebuild the plugin with an ecaphost SDK speaking version %d", slices.Max(host))
		}
		return 0, fmt.Errorf("plugin speaks module API versions %v, this host speaks %v (%s): %w", plugin, host, rebuild, ErrNoCommonAPIVersion)
	}
	return best, nil
}

// Configure sends the settings (Settings.APIVersion must be the negotiated
// version) and returns the module's diagnostics. err is for transport
// failures; a refused configuration comes back as error diagnostics.
func (c *Client) Configure(ctx context.Context, s sdk.Settings, t Transport) (sdk.Diagnostics, error) {
	t.DataChannel = c.data != nil && s.APIVersion >= 2 && !s.CheckOnly
	r, err := c.rpc.Configure(ctx, settingsToProto(s, t))
	if err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	ds := diagsFromProto(r)
	c.useData = t.DataChannel && !ds.HasErrors()
	return ds, nil
}

// UsesDataChannel reports whether the configured module sends its batches
// on the data channel.
func (c *Client) UsesDataChannel() bool { return c.useData }

// Start asks the module to load its bytecode and attach its probes.
func (c *Client) Start(ctx context.Context) error {
	if _, err := c.rpc.Start(ctx, &pb.StartRequest{}); err != nil {
		return &callError{op: "start", err: err}
	}
	return nil
}

// ErrCapabilityAbsent is wrapped by the error of an optional call the
// plugin does not implement (an older plugin, or a module without the
// capability).
var ErrCapabilityAbsent = errors.New("capability absent")

// Probes asks the started module which probes it attached. The error
// wraps ErrCapabilityAbsent when the plugin does not implement it.
func (c *Client) Probes(ctx context.Context) ([]sdk.ProbeInfo, error) {
	r, err := c.rpc.Probes(ctx, &pb.ProbesRequest{})
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("probes: %w", ErrCapabilityAbsent)
	}
	if err != nil {
		return nil, &callError{op: "probes", err: err}
	}
	return probesFromProto(r), nil
}

// Stop asks the module to detach, flush and free.
func (c *Client) Stop(ctx context.Context) error {
	if _, err := c.rpc.Stop(ctx, &pb.StopRequest{}); err != nil {
		return &callError{op: "stop", err: err}
	}
	return nil
}

// Batch is what Events hands to its callback: the complete events of one
// or more wire batches and the module's cumulative loss counters (the
// plugin's, plus the host transport's CounterFragmentsBroken and
// CounterRecordsOversize when they are not zero). A Batch and its events
// are valid only during the callback: clone what you keep.
type Batch struct {
	Sequence uint64
	Events   []sdk.Event
	Losses   []Counter
	// Err is set when part of this batch did not decode and was dropped
	// (counted in CounterBatchesMalformed); it says where and why.
	Err error
	// Backlog is how many bytes of later batches were already waiting
	// when this one was read (data channel only; 0 otherwise): how far
	// behind the host is.
	Backlog int
	// BacklogLimit is how many bytes can wait before the plugin's writes
	// block and its input backs up into the kernel's buffers: the data
	// channel's socket buffer and read-ahead (0: unknown, or no data
	// channel).
	BacklogLimit int
}

// Events streams the module's events to fn until the plugin ends the
// stream (nil error, after Stop) or ctx is cancelled or the transport
// fails. An error from fn ends the stream and is returned.
func (c *Client) Events(ctx context.Context, fn func(*Batch) error) error {
	stream, err := c.rpc.Events(ctx, &pb.EventsRequest{})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	var d BatchDecoder
	d.Module = c.module
	if c.useData {
		return c.dataEvents(stream, &d, fn)
	}
	for {
		wire, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := fn(d.Decode(wire)); err != nil {
			return err
		}
	}
}

// dataEvents is Events when batches come on the data channel: it reads
// frames until the end frame, then returns how the Events call ended. The
// call ending in an error first (the plugin failed, ctx was cancelled)
// interrupts the read.
func (c *Client) dataEvents(stream grpc.ServerStreamingClient[pb.EventBatch], d *BatchDecoder, fn func(*Batch) error) error {
	rpcDone := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = stream.Recv() // nothing comes but the end of the call
		}
		if errors.Is(err, io.EOF) {
			err = nil
			// The end frame was written before the call ended; bound the
			// wait for it all the same.
			_ = c.data.SetReadDeadline(time.Now().Add(dataEndTimeout))
		} else {
			_ = c.data.SetReadDeadline(time.Now()) // interrupt the read
		}
		rpcDone <- err
	}()
	fr := wire.NewFrameReader(c.data)
	for {
		w, err := fr.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if rerr := <-rpcDone; rerr != nil {
					return fmt.Errorf("events: %w", rerr)
				}
				return fmt.Errorf("events: the plugin ended its events without the data channel's end frame")
			}
			// The plugin died or broke the framing: prefer the call's
			// error, which says more, when it comes soon.
			select {
			case rerr := <-rpcDone:
				if rerr != nil {
					return fmt.Errorf("events: %w (data channel: %v)", rerr, err)
				}
			case <-time.After(time.Second):
			}
			return fmt.Errorf("events: data channel: %w", err)
		}
		if w == nil {
			if err := <-rpcDone; err != nil {
				return fmt.Errorf("events: %w", err)
			}
			return nil
		}
		b := d.Decode(w)
		b.Backlog, b.BacklogLimit = fr.Backlog(), fr.Limit
		if err := fn(b); err != nil {
			return err
		}
	}
}

// dataEndTimeout bounds the wait for the end frame after the plugin ended
// its Events call.
const dataEndTimeout = 10 * time.Second

// callError is a failed call: its text is the plugin's message, and it
// wraps the gRPC error, so that status.Code still tells a deadline from a
// refusal.
type callError struct {
	op  string
	err error
}

func (e *callError) Error() string { return e.op + ": " + statusMessage(e.err) }
func (e *callError) Unwrap() error { return e.err }

func statusMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.Unknown {
			return s.Message()
		}
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}
