// Package supervise launches module plugins and keeps them running.
//
// Launch starts a plugin binary through go-plugin (gRPC on a Unix socket in
// a root-only directory, the process killed with the host), asks it to
// describe itself and negotiates the module API version. A Runner then
// owns one started module: it reads its event stream into the host's sink,
// restarts the plugin with capped backoff when it dies, writes a gap record
// saying what was not captured meanwhile, and on shutdown stops the module
// so that every event it read reaches the sink before the process is
// killed.
package supervise
