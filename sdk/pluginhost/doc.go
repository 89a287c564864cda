// Package pluginhost is the host's side of the plugin contract: what
// ecaphost and the sdk/harness test host use to launch, drive and read a
// module plugin. Module authors do not need it; they import sdk.
//
// A host hands PluginSet and Handshake to go-plugin, dispenses
// DispenseName to get a *Client, agrees on a module API version with
// Negotiate, and reads the module's events as Batches from Client.Events.
// NewDataChannel creates the socket pair a plugin's batches travel on
// (module API version 2); the host passes the plugin its end as file
// descriptor 3 and names it in EnvDataFD. BatchDecoder turns wire batches
// into events, joining records the plugin split, and never panics on what
// a broken or hostile plugin sends.
package pluginhost
