package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/discovery"
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
	// stopTimeout bounds Stop (detach and last batch): SIGINT must end
	// the host within 2 s whatever a plugin does; one that has not
	// finished by then is killed at once, which detaches its probes too
	// (and loses what it held: the openssl plugin took about 1 s to stop
	// in the e2e tests, and over 1.75 s at times on the machine at load 9).
	stopTimeout = 1500 * time.Millisecond
	killGrace   = 200 * time.Millisecond // graceful exit before SIGKILL to the group
)

// Plugin says what to launch.
type Plugin struct {
	Name string // the name users write in HCL
	// Path is the executable, and Link the symbolic link it was found
	// through, if any (discovery.Plugin). Every launch opens and checks
	// the file again and executes what it opened.
	Path string
	Link string
	// Verify, when set, is given the SHA-256 of the file as opened, before
	// each exec (a restart included); an error refuses the exec. The lock
	// file's check goes here.
	Verify func(sha256 string) error
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

// Launch opens p's executable, checks it as opened (discovery.Open, then
// p.Verify), executes that very file through its descriptor, and asks the
// plugin to describe itself. The returned error names the plugin and its
// path. The process is killed if anything fails, at once when ctx ends
// before the plugin has described itself, and with the host (SIGKILL on
// parent death) if the host dies.
func Launch(ctx context.Context, p Plugin, logger hclog.Logger) (*Launched, error) {
	bin, err := discovery.Open(discovery.Plugin{Name: p.Name, Path: p.Path, Link: p.Link})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	defer bin.Close() // the plugin has its own copy once started
	if p.Verify != nil {
		sum, err := bin.SHA256()
		if err == nil {
			err = p.Verify(sum)
		}
		if err != nil {
			return nil, fmt.Errorf("plugin %s: not run: %w", p.Name, err)
		}
	}
	sockDir, err := newSockDir(logger)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: a directory for its socket: %w", p.Name, err)
	}
	exe, err := execByFD(sockDir, p.Path)
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	data, dataChild, err := pluginhost.NewDataChannel()
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	// Until the plugin has described itself, the end of ctx kills it: a
	// plugin stuck in its handshake must not hold up a SIGINT.
	lctx, lcancel := context.WithCancel(context.Background())
	stopWatch := context.AfterFunc(ctx, lcancel)
	cmd := exec.CommandContext(lctx, exe)
	cmd.Args[0] = p.Path
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = pluginEnv(os.Environ(), sockDir)
	cmd.ExtraFiles = []*os.File{dataChild, bin.File} // fd 3 and fd 4 in the plugin
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
		StartTimeout:     handshakeTimeout,
		Logger:           logger.Named(p.Name),
		Managed:          false,
	})
	fail := func(err error) (*Launched, error) {
		stopWatch()
		dataChild.Close()
		data.Close()
		killGroup(pc, cmd, sockDir, false)
		lcancel()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (the host is stopping)", ctx.Err())
		}
		return nil, fmt.Errorf("plugin %s (%s): %w", p.Name, p.Path, err)
	}
	rpc, err := pc.Client()
	if err != nil {
		return fail(explainStartError(err))
	}
	dataChild.Close() // the plugin has its copy
	if cmd.Process != nil {
		track(cmd.Process.Pid)
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
	if !stopWatch() {
		return fail(ctx.Err())
	}
	return &Launched{Plugin: p, Info: info, APIVersion: v, Client: client, pc: pc, cmd: cmd, sockDir: sockDir, data: data, logger: logger.Named(p.Name)}, nil
}

// execByFD returns the path to execute for the plugin binary the child
// has open as fd 4: a symbolic link in the private socket directory to
// /proc/self/fd/4, which the kernel resolves in the child. The file the
// host checked is what runs, not whatever holds its name by then; the
// link's name keeps the process's name (comm) that of the plugin's file,
// and a script plugin's interpreter opens the same descriptor.
func execByFD(sockDir, path string) (string, error) {
	exe := filepath.Join(sockDir, filepath.Base(path))
	if err := os.Symlink("/proc/self/fd/4", exe); err != nil {
		return "", fmt.Errorf("preparing to execute %s by its descriptor: %w", path, err)
	}
	return exe, nil
}

func explainStartError(err error) error {
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

// Kill ends the plugin process (gracefully first, as go-plugin does) and
// every process it started.
func (l *Launched) Kill() {
	killGroup(l.pc, l.cmd, l.sockDir, true)
	l.data.Close()
}

// killNow kills the plugin's process group without waiting for a
// graceful exit: for a plugin that stopped responding.
func (l *Launched) killNow() {
	killGroup(l.pc, l.cmd, l.sockDir, false)
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
// the host's stderr open. Last it removes the socket directory. Unless
// graceful, the group is killed first.
func killGroup(pc *plugin.Client, cmd *exec.Cmd, sockDir string, graceful bool) {
	defer os.RemoveAll(sockDir)
	if cmd.Process != nil {
		defer untrack(cmd.Process.Pid)
		if !graceful {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
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

// running are the process groups of the plugins launched and not yet
// killed, for KillAll.
var running = struct {
	sync.Mutex
	pids map[int]bool
}{pids: map[int]bool{}}

func track(pid int) {
	running.Lock()
	defer running.Unlock()
	running.pids[pid] = true
}

func untrack(pid int) {
	running.Lock()
	defer running.Unlock()
	delete(running.pids, pid)
}

// KillAll sends SIGKILL to the process group of every plugin launched and
// not yet killed, and returns how many: the kernel detaches a dead
// plugin's probes. For a host told to stop a second time.
func KillAll() int {
	running.Lock()
	defer running.Unlock()
	for pid := range running.pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	return len(running.pids)
}

// PID returns the plugin process id, 0 if unknown.
func (l *Launched) PID() int {
	if rc := l.pc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}
