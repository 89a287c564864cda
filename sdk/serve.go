package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	"github.com/ecaphost/ecaphost/sdk/safefile"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

func init() {
	// The host's harness (pluginhost.ServerFor) serves a module in-process
	// through this; Serve is the plugin's way.
	wire.NewServer = func(m any, logger hclog.Logger, data net.Conn) pb.ModuleServer {
		return newServer(m.(Module), logger, data)
	}
}

// stopProfile ends the CPU profile the host asked for (make bench), if any.
var stopProfile func()

// Serve runs m as an ecaphost plugin: call it from the plugin's main. It
// returns when the host is done with the plugin. Nothing may be printed on
// stdout before or while it runs: stdout carries go-plugin's handshake.
// Logs go to the hclog logger the module receives in Init, which the host
// relays under the module's name.
func Serve(m Module) {
	if path := os.Getenv(wire.EnvPluginCPUProfile); path != "" {
		// Checked as every file a plugin writes; a profile replaces the
		// last one.
		if f, err := safefile.Append(path + "." + m.Info().Name); err == nil && f.Truncate(0) == nil {
			if pprof.StartCPUProfile(f) == nil {
				// The host kills the process after Stop: write it then.
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
		}
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       m.Info().Name,
		Level:      hclog.Trace, // the host filters by its --log-level
		Output:     os.Stderr,
		JSONFormat: true,
	})
	data, err := wire.PluginDataChannel()
	if err != nil {
		// Configure refuses a host that asks for it: say why here.
		logger.Error("the host's data channel is unusable", "error", err)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			wire.HandshakeVersion: {wire.PluginName: &wire.GRPCPlugin{Module: newServer(m, logger, data)}},
		},
		GRPCServer: newGRPCServer,
		Logger:     logger,
	})
}

// newGRPCServer is the plugin's gRPC server. A write buffer larger than
// gRPC's 32 KiB default sends a batch (up to 3 MiB) in a few writes.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.WriteBufferSize(256<<10))...)
}

// server implements the Module service on top of a Module.
type server struct {
	pb.UnimplementedModuleServer
	m      Module
	logger hclog.Logger
	data   net.Conn // the data channel the host passed, if any

	mu         sync.Mutex
	state      int
	b          *batcher
	useData    bool // batches go on data, not on the Events stream
	runDone    chan struct{}
	streamDone chan struct{}
	cancel     context.CancelFunc
	stopping   atomic.Bool // Stop was called: Run returning is expected
}

const (
	stateNew = iota
	stateConfigured
	stateStarted
	stateStopped
)

// stopTimeout bounds how long Stop waits for the stream to drain.
const stopTimeout = 10 * time.Second

func newServer(m Module, logger hclog.Logger, data net.Conn) *server {
	return &server{m: m, logger: logger, data: data}
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	info := s.m.Info()
	if err := info.Schema.Validate(); err != nil {
		return nil, status.Errorf(codes.Internal, "module %s declares a bad schema: %v", info.Name, err)
	}
	return infoToProto(info), nil
}

func (s *server) Configure(_ context.Context, r *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return nil, status.Error(codes.FailedPrecondition, "module is already configured")
	}
	info := s.m.Info()
	settings, transport, err := settingsFromProto(r)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if !slices.Contains(info.apiVersions(), settings.APIVersion) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"host chose module API version %d, plugin %s speaks %v", settings.APIVersion, info.Name, info.apiVersions())
	}
	transport.DataChannel = transport.DataChannel && settings.APIVersion >= 2
	if transport.DataChannel && s.data == nil {
		return nil, status.Errorf(codes.FailedPrecondition,
			"the host asked for batches on its data channel, but plugin %s has none (%s not set, or not a socket: see the plugin's log)", info.Name, wire.EnvDataFD)
	}
	if ds := settings.Config.Check(info.Schema); ds.HasErrors() {
		return diagsToProto(ds), nil
	}
	settings.Config = settings.Config.WithDefaults(info.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	b := newBatcher(info.Name, transport, settings.APIVersion)
	if err := s.m.Init(ctx, s.logger, settings, b); err != nil {
		cancel()
		b.close()
		return diagsToProto(AsDiagnostics(err)), nil
	}
	s.b, s.cancel, s.useData = b, cancel, transport.DataChannel
	s.state = stateConfigured
	return &pb.ConfigureResponse{}, nil
}

func (s *server) Start(context.Context, *pb.StartRequest) (*pb.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateConfigured {
		return nil, status.Error(codes.FailedPrecondition, "start before a successful configure")
	}
	if err := s.m.Start(); err != nil {
		if cerr := s.m.Close(); cerr != nil {
			s.logger.Warn("closing after a failed start", "error", cerr)
		}
		s.state = stateStopped
		return nil, status.Error(codes.Unknown, err.Error())
	}
	s.state = stateStarted
	s.runDone = make(chan struct{})
	go func() {
		defer close(s.runDone)
		err := s.m.Run()
		if !s.stopping.Load() {
			// Run ended on its own: end the stream so the host sees the
			// module failed and can restart it.
			s.logger.Error("event loop ended before stop", "error", err)
			s.b.close()
		}
	}()
	return &pb.StartResponse{}, nil
}

func (s *server) Events(_ *pb.EventsRequest, stream grpc.ServerStreamingServer[pb.EventBatch]) error {
	s.mu.Lock()
	if s.state < stateConfigured || s.b == nil {
		s.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "events before a successful configure")
	}
	if s.streamDone != nil {
		s.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "an events stream is already open")
	}
	b, done := s.b, make(chan struct{})
	s.streamDone = done
	useData := s.useData
	s.mu.Unlock()
	defer close(done)
	if useData {
		return s.sendFrames(b, stream.Context())
	}
	return drain(b, stream.Context(), stream.Send)
}

// drain hands b's batches to send, recycling each, until the batcher
// closes (nil), send fails or ctx ends.
func drain(b *batcher, ctx context.Context, send func(*pb.EventBatch) error) error {
	for {
		select {
		case batch, ok := <-b.out:
			if !ok {
				return nil
			}
			err := send(batch)
			b.recycle(batch)
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendFrames writes b's batches to the data channel until the batcher
// closes, then the end frame. A write error or the host going away ends
// it: the host sees the Events call fail.
func (s *server) sendFrames(b *batcher, ctx context.Context) error {
	fw := &wire.FrameWriter{W: s.data}
	stop := context.AfterFunc(ctx, func() {
		// Unblock a write to a host that no longer reads.
		_ = s.data.SetWriteDeadline(time.Now())
	})
	defer stop()
	backlog := channelBacklog(s.data)
	err := drain(b, ctx, func(batch *pb.EventBatch) error {
		err := fw.Write(batch)
		if err == nil && backlog != nil {
			b.noteBacklog(backlog())
		}
		return err
	})
	if err == nil {
		err = fw.End()
	}
	if err != nil && ctx.Err() == nil {
		return status.Errorf(codes.Unavailable, "data channel: %v", err)
	}
	return err
}

// channelBacklog returns a function measuring the data channel c: the
// bytes written that the host has not read yet (SIOCOUTQ), and how many
// can wait before a write blocks (the socket's send buffer); nil when c
// is not a socket.
func channelBacklog(c net.Conn) func() (n, limit int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	limit := 0
	_ = raw.Control(func(fd uintptr) {
		limit, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	return func() (int, int) {
		n := 0
		_ = raw.Control(func(fd uintptr) {
			n, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		})
		return n, limit
	}
}

func (s *server) Stop(context.Context, *pb.StopRequest) (*pb.StopResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	s.stopping.Store(true)
	if s.state == stateStarted {
		if err := s.m.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping: %w", err))
		}
		<-s.runDone
	}
	if s.b != nil {
		// Last batch with the final counters, then the stream ends.
		s.b.close()
		if s.streamDone != nil {
			select {
			case <-s.streamDone:
			case <-time.After(stopTimeout):
				errs = append(errs, errors.New("the host did not read the last events in time"))
			}
		}
	}
	if s.state == stateStarted {
		if err := s.m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing: %w", err))
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.state = stateStopped
	if stopProfile != nil {
		stopProfile()
		stopProfile = nil
	}
	if err := errors.Join(errs...); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &pb.StopResponse{}, nil
}

func (s *server) Probes(context.Context, *pb.ProbesRequest) (*pb.ProbesResponse, error) {
	pl, ok := s.m.(ProbeLister)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the module does not list its probes")
	}
	s.mu.Lock()
	started := s.state == stateStarted
	s.mu.Unlock()
	if !started {
		return nil, status.Error(codes.FailedPrecondition, "probes before a successful start")
	}
	return probesToProto(pl.Probes()), nil
}
