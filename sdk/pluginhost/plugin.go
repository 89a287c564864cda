package pluginhost

import (
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/internal/wire"
	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// HandshakeVersion is the go-plugin protocol version (its history is in
// sdk/internal/wire); the module API above it is sdk.APIVersions.
const HandshakeVersion = wire.HandshakeVersion

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = wire.Handshake

// DispenseName is what a host passes to go-plugin's Dispense.
const DispenseName = wire.PluginName

// EnvDataFD names the environment variable that tells a plugin which file
// descriptor is its end of the data channel.
const EnvDataFD = wire.EnvDataFD

// EnvPluginCPUProfile, when set in the host's environment, makes every
// plugin write a CPU profile to its value suffixed with the module name
// (for make bench: where the time goes).
const EnvPluginCPUProfile = wire.EnvPluginCPUProfile

// PluginSet returns the go-plugin plugin set of the contract. A host passes
// it (as VersionedPlugins under HandshakeVersion) to plugin.NewClient and
// dispenses DispenseName to get a *Client.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{NewClient: newClient}}
}

// ServerFor returns the plugin set serving m and dispensing a *Client, for
// in-process harnesses (go-plugin's TestPluginGRPCConn). data, when not
// nil, is the plugin's end of a data channel (the host's end goes to
// Client.SetDataChannel).
func ServerFor(m sdk.Module, logger hclog.Logger, data net.Conn) plugin.PluginSet {
	return plugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{Module: wire.NewServer(m, logger, data), NewClient: newClient}}
}

func newClient(rpc pb.ModuleClient) any { return &Client{rpc: rpc} }

// NewDataChannel creates a data channel for one plugin process: the host's
// end, and the file to pass the plugin as its file descriptor 3
// (exec.Cmd.ExtraFiles[0]; set EnvDataFD=3), which the host closes once
// the process started.
func NewDataChannel() (host net.Conn, plugin *os.File, err error) { return wire.NewDataChannel() }

// Transport sets how a plugin batches events for the host. The host sends
// it with Configure; zero fields take the defaults below.
type Transport struct {
	MaxBatchEvents   uint32        // flush when a batch holds this many events
	MaxBatchBytes    uint32        // flush when a batch's payloads reach this size
	FlushInterval    time.Duration // flush a non-empty batch at least this often
	MaxFragmentBytes uint32        // split payloads larger than this
	// DataChannel: batches travel on the data channel (API version 2).
	// Client.Configure sets it when the host gave the client one.
	DataChannel bool
	// BoostPID is the host's process id while it runs in the background,
	// 0 otherwise: a plugin (the SDK's event loop) whose kernel ring buffer
	// keeps filling returns that process's threads to normal priority,
	// since a host waiting for idle CPU may notice too late. The plugin
	// obeys it only when the process is its parent.
	BoostPID uint32
}

// Transport defaults. DefaultMaxBatchBytes stays well under gRPC's
// default 4 MiB message limit, with room for event metadata.
const (
	DefaultMaxBatchEvents   = wire.DefaultMaxBatchEvents
	DefaultMaxBatchBytes    = wire.DefaultMaxBatchBytes
	DefaultFlushInterval    = wire.DefaultFlushInterval
	DefaultMaxFragmentBytes = wire.DefaultMaxFragmentBytes
)

// Counter is a cumulative loss counter of a module.
type Counter struct {
	Name  string
	Value uint64
}
