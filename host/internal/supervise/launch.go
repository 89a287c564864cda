package supervise

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/prio"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Timeouts bounding a plugin that hangs.
const (
	handshakeTimeout = 10 * time.Second // process start to go-plugin handshake
	callTimeout      = 10 * time.Second // Describe, Configure
	// DefaultStartTimeout bounds Start (bytecode load and attach).
	DefaultStartTimeout = 60 * time.Second
	stopTimeout         = 15 * time.Second // Stop: detach and last batch
	killGrace           = 3 * time.Second  // graceful exit before SIGKILL to the group
)

// Plugin says what to launch.
type Plugin struct {
	Name string // the name users write in HCL
	Path string // checked executable
	// Secure, when set, makes go-plugin verify the file's checksum right
	// before exec.
	Secure *plugin.SecureConfig
	// StartTimeout bounds the Start call (bytecode load and attach); 0
	// means DefaultStartTimeout.
	StartTimeout time.Duration
}

// Launched is a running plugin process that described itself.
type Launched struct {
	Plugin     Plugin
	Info       sdk.Info
	APIVersion uint32
	Client     *pluginhost.Client
	pc         *plugin.Client
	cmd        *exec.Cmd
	sockDir    string
	data       net.Conn // the host's end of the data channel
	logger     hclog.Logger
	// probes and binaries count what Start attached (-1: the plugin does
	// not list its probes).
	probes, binaries int
}

// The plugin's gRPC transport. The plugin listens on a Unix socket in a
// directory only root can enter (sockDir, 0700), so no other user can
// reach it, and any process that can is root and could read the plugin's
// memory anyway: TLS on that socket (go-plugin's AutoMTLS) protected
// nothing and cost a tenth of the capture throughput (make bench). The
// receive window and buffers are sized for batches of up to 3 MiB, so a
// batch crosses in a few reads instead of waiting on window updates.
const (
	grpcWindowBytes     = 8 << 20
	grpcReadBufferBytes = 256 << 10
)

var grpcDialOptions = []grpc.DialOption{
	grpc.WithInitialWindowSize(grpcWindowBytes),
	grpc.WithInitialConnWindowSize(grpcWindowBytes),
	grpc.WithReadBufferSize(grpcReadBufferBytes),
}

// Launch starts p and asks it to describe itself. The returned error names
// the plugin and its path. The process is killed if anything fails, and
// killed with the host (SIGKILL on parent death) if the host dies.
func Launch(ctx context.Context, p Plugin, logger hclog.Logger) (*Launched, error) {
	sockDir, err := newSockDir(logger)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: a directory for its socket: %w", p.Name, err)
	}
	data, dataChild, err := pluginhost.NewDataChannel()
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path)
	cmd.Env = pluginEnv(os.Environ(), sockDir)
	cmd.ExtraFiles = []*os.File{dataChild} // fd 3 in the plugin
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL, // no orphans after kill -9 of the host
		Setpgid:   true,            // a terminal's Ctrl-C goes to the host only
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginhost.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{pluginhost.HandshakeVersion: pluginhost.PluginSet()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true, // cmd.Env has it, with the socket directory
		GRPCDialOptions:  grpcDialOptions,
		SecureConfig:     p.Secure,
		StartTimeout:     handshakeTimeout,
		Logger:           logger.Named(p.Name),
		Managed:          false,
	})
	fail := func(err error) (*Launched, error) {
		dataChild.Close()
		data.Close()
		killGroup(pc, cmd, sockDir)
		return nil, fmt.Errorf("plugin %s (%s): %w", p.Name, p.Path, err)
	}
	rpc, err := pc.Client()
	if err != nil {
		return fail(explainStartError(err))
	}
	dataChild.Close() // the plugin has its copy
	if cmd.Process != nil {
		// Launched by a host thread in the background, the plugin would
		// run there too; it drains the kernel's buffers, so it must not.
		if err := prio.Normalize(cmd.Process.Pid); err != nil {
			logger.Named(p.Name).Warn("the plugin may run at idle priority", "error", err)
		}
	}
	raw, err := rpc.Dispense(pluginhost.DispenseName)
	if err != nil {
		return fail(fmt.Errorf("dispensing the module service: %w", err))
	}
	client, ok := raw.(*pluginhost.Client)
	if !ok {
		return fail(fmt.Errorf("unexpected client type %T", raw))
	}
	client.SetDataChannel(data)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	info, err := client.Describe(cctx)
	if err != nil {
		return fail(err)
	}
	if info.Name != p.Name {
		return fail(fmt.Errorf("the binary calls itself %q, not %q", info.Name, p.Name))
	}
	v, err := pluginhost.Negotiate(sdk.APIVersions, info.APIVersions)
	if err != nil {
		return fail(err)
	}
	return &Launched{Plugin: p, Info: info, APIVersion: v, Client: client, pc: pc, cmd: cmd, sockDir: sockDir, data: data, logger: logger.Named(p.Name)}, nil
}

func explainStartError(err error) error {
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("the binary does not match its checksum in the lock file: %w", err)
	}
	return fmt.Errorf("starting (is it an ecaphost plugin? it must print nothing on stdout but the go-plugin handshake): %w", err)
}

// Configure sends the settings with the negotiated API version.
func (l *Launched) Configure(ctx context.Context, s sdk.Settings, t pluginhost.Transport) (sdk.Diagnostics, error) {
	s.APIVersion = l.APIVersion
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ds, err := l.Client.Configure(cctx, s, t)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", l.Plugin.Name, err)
	}
	l.logger.Debug("configured", "api_version", s.APIVersion, "data_channel", l.Client.UsesDataChannel())
	return ds, nil
}

// Start loads and attaches, bounded by the plugin's StartTimeout.
func (l *Launched) Start(ctx context.Context) error {
	timeout := l.Plugin.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.Client.Start(cctx); err != nil {
		// The plugin may end the call itself when the deadline it was
		// sent passes, a moment before cctx notices.
		timedOut := cctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded
		if timedOut && ctx.Err() == nil {
			return fmt.Errorf("module %s: did not start within %v (loading bytecode and attaching probes): %w", l.Plugin.Name, timeout, err)
		}
		return fmt.Errorf("module %s: %w", l.Plugin.Name, err)
	}
	l.logProbes(ctx)
	return nil
}

// logProbes logs what the started module attached. Listing probes is an
// optional capability: a plugin without it still runs.
func (l *Launched) logProbes(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	probes, err := l.Client.Probes(cctx)
	l.probes, l.binaries = -1, -1
	switch {
	case errors.Is(err, pluginhost.ErrCapabilityAbsent):
		l.logger.Info("the plugin does not list its probes (an older plugin, or a module without the capability)")
		return
	case err != nil:
		l.logger.Warn("listing probes", "error", err)
		return
	}
	binaries := map[string]bool{}
	for _, p := range probes {
		l.logger.Debug("probe attached", "program", p.Program, "kind", p.Kind, "target", p.Target, "binary", p.Binary)
		if p.Binary != "" {
			binaries[p.Binary] = true
		}
	}
	l.logger.Info("probes attached", "probes", len(probes), "binaries", len(binaries))
	l.probes, l.binaries = len(probes), len(binaries)
}

// Exited reports whether the plugin process has exited.
func (l *Launched) Exited() bool { return l.pc.Exited() }

// Kill ends the plugin process (gracefully first, as go-plugin does) and
// every process it started.
func (l *Launched) Kill() {
	killGroup(l.pc, l.cmd, l.sockDir)
	l.data.Close()
}

// pluginEnv is the host's environment for a plugin, with go-plugin told to
// put the plugin's socket in sockDir, and the data channel named (fd 3).
func pluginEnv(host []string, sockDir string) []string {
	env := make([]string, 0, len(host)+1)
	for _, kv := range host {
		if !strings.HasPrefix(kv, plugin.EnvUnixSocketDir+"=") && !strings.HasPrefix(kv, pluginhost.EnvDataFD+"=") {
			env = append(env, kv)
		}
	}
	return append(env, plugin.EnvUnixSocketDir+"="+sockDir, pluginhost.EnvDataFD+"=3")
}

// killGroup kills the plugin, then its process group (the plugin runs in
// its own): a child it left behind would otherwise keep running, and keep
// the host's stderr open. Last it removes the socket directory.
func killGroup(pc *plugin.Client, cmd *exec.Cmd, sockDir string) {
	defer os.RemoveAll(sockDir)
	done := make(chan struct{})
	go func() {
		pc.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(killGrace):
		// go-plugin's Kill waits for the plugin's stdout and stderr to
		// close, which a child holding them open would stall forever.
	}
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-done
}

// PID returns the plugin process id, 0 if unknown.
func (l *Launched) PID() int {
	if rc := l.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}
