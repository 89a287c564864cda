// Command ecaphost-plugin-nspr is the nspr capture module of ecaphost.
//
// Not implemented yet: the module describes itself so that configs naming
// it validate, and refuses to start with a message saying so.
package main

import (
	"context"
	"errors"

	"github.com/cilium/ebpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/go-hclog"
)

type module struct{}

func (module) Info() sdk.Info {
	return sdk.Info{Name: "nspr", Version: "0.0.0", Description: "not implemented yet"}
}
func (module) Name() string { return "nspr" }
func (module) Init(context.Context, hclog.Logger, sdk.Settings, sdk.Sink) error {
	return errors.New("the nspr module is not implemented in this build of ecaphost")
}
func (module) Start() error                               { return errors.New("not implemented") }
func (module) Run() error                                 { return nil }
func (module) Stop() error                                { return nil }
func (module) Close() error                               { return nil }
func (module) Events() []*ebpf.Map                        { return nil }
func (module) DecodeFun(*ebpf.Map) (sdk.DecodeFunc, bool) { return nil, false }
func (module) Decode(*ebpf.Map, []byte, *sdk.Event) error { return errors.New("no maps") }
func (module) Dispatcher(*sdk.Event)                      {}

func main() { sdk.Serve(module{}) }
