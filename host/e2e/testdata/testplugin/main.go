// Command testplugin is a purpose-built plugin for ecaphost's end-to-end
// tests. Its behaviour comes from the name it is run under
// (ecaphost-plugin-NAME):
//
//	plain   a module without eBPF and without the optional ProbeLister
//	        capability: it emits one "greeting" event after Start, with
//	        the API version the host chose and the directory of its socket
//	        and that directory's mode as fields
//	future  speaks only module API version 99
//	legacy  speaks only module API version 1 (events as messages)
//	hang    never returns from Start
//	deaf    never returns from Stop
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/go-hclog"
)

type module struct {
	name string
	api  uint32
	sink sdk.Sink
	stop chan struct{}
}

func (m *module) Info() sdk.Info {
	info := sdk.Info{Name: m.name, Version: "0.0.1-test", Description: "ecaphost test plugin"}
	switch m.name {
	case "future":
		info.APIVersions = []uint32{99}
	case "legacy":
		info.APIVersions = []uint32{1}
	}
	return info
}
func (m *module) Init(_ context.Context, _ hclog.Logger, s sdk.Settings, sink sdk.Sink) error {
	m.sink, m.api = sink, s.APIVersion
	return nil
}
func (m *module) Start() error {
	if m.name == "hang" {
		select {}
	}
	return nil
}
func (m *module) Run() error {
	ev := sdk.Event{Time: time.Now(), Kind: "greeting", PID: uint32(os.Getpid()), Payload: []byte("hello from " + m.name)}
	ev.AddField("api", strconv.Itoa(int(m.api)))
	if dir := os.Getenv("PLUGIN_UNIX_SOCKET_DIR"); dir != "" {
		ev.AddField("socket_dir", dir)
		if fi, err := os.Stat(dir); err == nil {
			ev.AddField("socket_dir_mode", fmt.Sprintf("%o", fi.Mode().Perm()))
		}
	}
	m.sink.Emit(&ev)
	<-m.stop
	return nil
}
func (m *module) Stop() error {
	if m.name == "deaf" {
		select {}
	}
	close(m.stop)
	return nil
}
func (m *module) Close() error { return nil }

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "ecaphost-plugin-")
	sdk.Serve(&module{name: name, stop: make(chan struct{})})
}
