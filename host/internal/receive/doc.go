// Package receive is the host's data path for one module: step 6 of
// docs/architecture.md, between the plugin's data channel and the
// outputs.
//
// A Pipeline takes the batches the plugin client (sdk/pluginhost) has read
// and decoded in place, counts their events and the plugin's loss
// counters, hands the events a TLS module marks RouteStream to the HTTP
// stream decoder (host/internal/stream), and copies every event once
// into a batch of its own that the outputs share (host/internal/output).
// It tells the priority governor (host/internal/prio) when the module's
// input backs up. Launching the plugin and restarting it are
// host/internal/lifecycle's job, which drives a Pipeline through its
// Deliver, Idle and End methods.
package receive
