// Package wire holds what both ends of the plugin transport must agree on
// and neither author nor host needs to see: the go-plugin handshake, the
// data channel's framing, the layout of packed records and the batching
// bounds. The plugin's end (sdk.Serve) and the host's end (sdk/pluginhost)
// both build on it; only the SDK can import it.
package wire
