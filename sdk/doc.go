// Package sdk is what an ecaphost module author imports.
//
// A module is a separate binary that ecaphost launches as a plugin. Its main
// function calls Serve with a value implementing Module; the SDK speaks the
// gRPC contract (shared/proto) with the host, batches events, splits records
// too large for the transport and reports loss counters. Module authors see
// only the plain Go types of this package: Event, Config, Schema,
// Diagnostic, Settings.
//
// The lifecycle the host drives (Module) is:
//
//	Info      who the module is and the schema of its config block
//	Init      settings checked; nothing is loaded into the kernel yet
//	Start     bytecode loaded, probes attached
//	Run       the event loop (the SDK calls it in its own goroutine)
//	Stop      stop reading; events already read are still delivered
//	Close     probes detached, kernel objects freed
//
// Most modules do not write these themselves: they hand their hooks
// (Info, Init, Spec, Decode) to ebpfbase.New, which returns a Module that
// loads and attaches through gojue/ebpfmanager, reads the kernel's buffers
// and routes each decoded event. docs/writing-a-module.md walks through
// one; examples/gnutls is a complete module outside this tree's plugins.
//
// This package exports 37 identifiers at package level and 29 methods,
// all of them for authors but three (TestExportedCount holds it to these
// numbers; InfoCounterPrefix names a module's counters of work done, such
// as the files node-wide discovery probes, and TruncatedCounterPrefix its
// counters of data captured in part, apart from its losses). The three
// are methods of the SDK's own Sink that ebpfbase's event loop calls
// (Overloaded, BoostsHost, HostBehind): whether the host keeps up, and
// calling a host in the background out of it.
// The host's side of the contract - client, negotiation, data channel,
// handshake - is sdk/pluginhost; sdk/harness runs a module against an
// in-process host over real gRPC for tests.
package sdk
