package wire

import (
	"context"
	"errors"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/ecaphost/ecaphost/shared/proto/pluginv1"
)

// HandshakeVersion is the go-plugin protocol version. It changes only when
// the transport itself breaks compatibility; the host and plugin must agree
// exactly or go-plugin refuses the connection before any RPC. (The module
// API, negotiated above it, is sdk.APIVersions.)
//
// History:
//
//	1  first release: gRPC, service ecaphost.plugin.v1.Module. Whether
//	   the socket carries TLS (go-plugin's AutoMTLS) is the host's choice,
//	   told through the environment: hosts since module API version 2 do
//	   without it (see host/internal/lifecycle/launch.go).
const HandshakeVersion = 1

// Handshake is the go-plugin handshake shared by host and plugins. The
// magic cookie keeps a plugin binary from being run by hand by mistake:
// the plugin refuses to serve unless the host set this variable.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  HandshakeVersion,
	MagicCookieKey:   "ECAPHOST_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "3c1f0a2f6b1e4f0c9a7d4e2b8c5d6a1f",
}

// PluginName is the key of the module service in go-plugin's plugin set,
// what a host dispenses.
const PluginName = "module"

// EnvPluginCPUProfile, when set in the host's environment, makes every
// plugin write a CPU profile to its value suffixed with the module name
// (for make bench: where the time goes).
const EnvPluginCPUProfile = "ECAPHOST_PLUGIN_CPUPROFILE"

// GRPCPlugin is go-plugin's view of the contract: Module is set on the
// plugin's side, NewClient on the host's (both in an in-process harness).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Module    pb.ModuleServer
	NewClient func(pb.ModuleClient) any
}

func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Module == nil {
		return errors.New("this end of the plugin set has no module to serve")
	}
	pb.RegisterModuleServer(s, p.Module)
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	if p.NewClient == nil {
		return nil, errors.New("this end of the plugin set is not a host")
	}
	return p.NewClient(pb.NewModuleClient(cc)), nil
}

// NewServer returns the plugin's end of the contract serving m, an
// sdk.Module, for the in-process harness of sdk/pluginhost. The sdk
// package sets it when it is initialised: the server lives there, beside
// Serve, and the host's package cannot import it the other way round.
var NewServer func(m any, logger hclog.Logger, data net.Conn) pb.ModuleServer
