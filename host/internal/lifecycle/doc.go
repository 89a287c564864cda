// Package lifecycle launches module plugins and keeps them running: the
// launch and restart steps of docs/architecture.md.
//
// Launch opens a plugin binary, checks it on the descriptor it then
// executes, starts it through go-plugin (gRPC on a Unix socket in a
// root-only directory, the process killed with the host), asks it to
// describe itself and negotiates the module API version; Launched
// configures, starts and kills it. A Runner owns one started module: it
// runs the plugin's event stream into a Receiver (host/internal/receive,
// the data path), relaunches the plugin with capped backoff when it dies,
// writes a gap record saying what was not captured meanwhile, and on
// shutdown stops the module so that every event it read reaches the
// Receiver before the process is killed.
package lifecycle
