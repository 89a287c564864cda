// Package harness runs a module against an in-process host over real gRPC,
// the same transport (go-plugin's gRPC, batching, fragments) a plugin uses
// under ecaphost, without building a binary. ecaphost's own tests and third
// parties' module tests use it alike:
//
//	h := harness.New(t, mymodule.New())
//	h.WantConfigError(t, sdk.Config{"path": "/nope"}, "path", "does not exist")
//
//	harness.RequirePrivileges(t, "bash") // root, BTF, uprobes, the traced program
//	h = harness.Start(t, mymodule.New(), sdk.Settings{Config: sdk.Config{"path": "/usr/lib/libfoo.so"}})
//	// ... make the traced program do something ...
//	h.WaitFor(t, 5*time.Second, func(ev *sdk.Event) bool { return ev.Kind == "command" })
//	h.Stop(t)
//
// RequirePrivileges and SkipOrFail check at run time what a test needs:
// without it the test is skipped, but under ECAPHOST_E2E=1 (set by CI) it
// fails, so that a green run means the probes really ran.
//
// Stream, Describe and Poll serve tests of TLS modules: one side of a
// captured conversation, events listed for a failure message, and waiting
// for a condition on several events.
//
// Drive runs a module in-process without the transport, for a test that
// needs the module's own value (an ebpfbase.Module's Bytecode) or chooses
// when Run starts; its events go to a Sink.
//
// Package tlspeer, below this one, starts the TLS servers that tests of
// TLS modules capture; package terminal runs an interactive program (a
// shell) on a pseudo-terminal and types into it.
package harness
