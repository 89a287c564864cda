// Package shellrec decodes the records of the shell modules: a command
// line typed into an interactive shell, then the same line again with its
// exit status once the shell has run it. The kernel side, shared by
// kern/bash_kern.c and kern/zsh_kern.c, is kern/include/shellrec.h; a
// module for another shell includes that header, finds the line and the
// status with probes of its own, and decodes with a Decoder:
//
//	type Module struct{ dec shellrec.Decoder }
//
//	func New() *Module { return &Module{dec: shellrec.Decoder{Shell: "fish", LineMax: 4096}} }
//
//	func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error { return m.dec.Decode(raw, ev) }
//
// Each record becomes an event of Kind KindCommand or KindCommandExit with
// the line as its Payload, routed to the outputs.
package shellrec
