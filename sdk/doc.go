// Package sdk is what an ecaphost module author imports.
//
// A module is a separate binary that ecaphost launches as a plugin. Its main
// function calls Serve with a value implementing Module; the SDK speaks the
// gRPC contract (shared/proto) with the host, batches events, splits records
// too large for the transport and reports loss counters. Module authors see
// only the plain Go types of this package: Event, Config, Schema, Diagnostic.
//
// The lifecycle the host drives is:
//
//	Info      who the module is and the schema of its config block
//	Init      settings checked; nothing is loaded into the kernel yet
//	Start     bytecode loaded, probes attached
//	Run       the event loop (the SDK calls it in its own goroutine)
//	Stop      stop reading; events already read are still delivered
//	Close     probes detached, kernel objects freed
//
// Most modules embed ebpfbase.Module, which implements Start, Run, Stop and
// Close on top of gojue/ebpfmanager and leaves the module to describe its
// probes and decode its records.
//
// The host side of the contract is Client; the harness package runs a module
// against an in-process host over real gRPC for tests.
package sdk
