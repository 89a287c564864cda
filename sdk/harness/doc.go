// Package harness runs a module against an in-process host over real gRPC,
// the same transport (go-plugin's gRPC, batching, fragments) a plugin uses
// under ecaphost, without building a binary. ecaphost's own tests and third
// parties' module tests use it alike:
//
//	h := harness.New(t, mymodule.New())
//	h.Configure(t, sdk.Settings{Config: sdk.Config{"path": "/usr/lib/libfoo.so"}})
//	h.Start(t)
//	// ... make the traced program do something ...
//	h.WaitFor(t, 5*time.Second, func(ev sdk.Event) bool { return ev.Kind == "command" })
//	h.Stop(t)
package harness
