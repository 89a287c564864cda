package sdk

// HandshakeVersion is the go-plugin protocol version. It changes only when
// the transport itself breaks compatibility; the host and plugin must agree
// exactly or go-plugin refuses the connection before any RPC.
//
// History:
//
//	1  first release: gRPC, service ecaphost.plugin.v1.Module. Whether
//	   the socket carries TLS (go-plugin's AutoMTLS) is the host's choice,
//	   told through the environment: hosts since module API version 2 do
//	   without it (see host/internal/supervise/launch.go).
const HandshakeVersion = 1

// APIVersions lists the module API versions this SDK implements, newest
// last. The host picks the highest version both sides list and passes it to
// Configure; a plugin and host with no version in common are refused with a
// message naming both lists.
//
// History:
//
//	1  Describe, Configure, Start, Events (batched, fragments, cumulative
//	   loss counters), Stop.
//	2  Events batches carry their events packed in one byte string
//	   (EventBatch.packed, layout in packed.go) instead of a message each,
//	   and travel on the data channel the host passes the plugin (fd named
//	   by ECAPHOST_DATA_FD, framing in datachan.go) when Configure's
//	   Transport says so; otherwise on the Events stream. A host speaking 2
//	   still reads version 1 plugins, and a version 2 plugin sends messages
//	   on the stream to a host that chose 1.
var APIVersions = []uint32{1, 2}

// magicCookie keeps a plugin binary from being run by hand by mistake: the
// plugin refuses to serve unless the host set this environment variable.
const (
	magicCookieKey   = "ECAPHOST_PLUGIN_MAGIC_COOKIE"
	magicCookieValue = "3c1f0a2f6b1e4f0c9a7d4e2b8c5d6a1f"
)
