package bashmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/bash/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/shellrec"
)

// Name and Version of the module.
const (
	Name    = "bash"
	Version = "0.1.0"
)

// Config attribute names.
const (
	AttrBashBinary     = "bash_binary"
	AttrReadlineBinary = "readline_binary"
)

// Symbols the probes attach to or read (see kern/bash_kern.c).
const (
	symReadline     = "readline"       // finds the readline binary
	symRLNewline    = "rl_newline"     // probed: Enter pressed
	symRLLineBuffer = "rl_line_buffer" // read: the line
	symParseCommand = "parse_command"  // probed: before the next command
	symLastExit     = "last_command_exit_value"
)

var schema = sdk.Schema{Attributes: []sdk.Attribute{
	{
		Name:        AttrBashBinary,
		Type:        sdk.TypeString,
		Default:     "/bin/bash",
		Description: "Path of the bash binary; it must define parse_command.",
	},
	{
		Name:    AttrReadlineBinary,
		Type:    sdk.TypeString,
		Default: "",
		Description: "Path of the binary defining readline. Empty: bash_binary when it " +
			"defines readline, else the libreadline.so it links.",
	},
}}

// Module captures bash commands: its ebpfbase.Hooks. Create it with New
// and serve ebpfbase.New(New()).
type Module struct {
	logger       hclog.Logger
	dec          shellrec.Decoder // Decode's
	bashPath     string
	readlinePath string
	consts       map[string]any // link-time addresses for the probes
}

// symbolConstants reads the link-time addresses the probes need.
func symbolConstants(bash, readline string) (map[string]any, error) {
	consts := map[string]any{}
	for _, s := range []struct{ constant, path, symbol string }{
		{"sym_rl_newline", readline, symRLNewline},
		{"sym_rl_line_buffer", readline, symRLLineBuffer},
		{"sym_parse_command", bash, symParseCommand},
		{"sym_last_command_exit_value", bash, symLastExit},
	} {
		v, err := elfsym.Value(s.path, s.symbol)
		if err != nil {
			return nil, err
		}
		consts[s.constant] = v
	}
	return consts, nil
}

// New returns the bash module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: shellrec.Decoder{Shell: Name, LineMax: lineMax}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Commands typed into interactive bash, and their exit status.",
		Schema:      schema,
	}
}

// Init checks bash_binary and readline_binary; it loads nothing.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, _ sdk.Sink) error {
	cfg := settings.Config.WithDefaults(schema)
	bash, readline := cfg.String(AttrBashBinary), cfg.String(AttrReadlineBinary)
	var diags sdk.Diagnostics
	if d, ok := checkBinary(AttrBashBinary, bash, symParseCommand); !ok {
		diags = append(diags, d)
	}
	switch {
	case readline != "":
		if d, ok := checkBinary(AttrReadlineBinary, readline, symReadline); !ok {
			diags = append(diags, d)
		}
	case len(diags) == 0:
		found, err := elfsym.FindDefining(bash, symReadline)
		if err != nil {
			diags = append(diags, sdk.Errorf(AttrReadlineBinary, "readline not found",
				"%v; set %s to the libreadline.so that %s uses", err, AttrReadlineBinary, bash))
		}
		readline = found
	}
	if diags.HasErrors() {
		return diags
	}
	consts, err := symbolConstants(bash, readline)
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf(AttrBashBinary, "Unsupported bash",
			"%v: this module reads bash's %s and readline's %s", err, symLastExit, symRLLineBuffer)}
	}
	m.bashPath, m.readlinePath, m.consts = bash, readline, consts
	m.logger = logger
	m.logger.Debug("binaries checked", "bash", bash, "readline", readline)
	return nil
}

// checkBinary checks that path is a regular ELF file defining symbol.
func checkBinary(attr, path, symbol string) (sdk.Diagnostic, bool) {
	if path == "" {
		return sdk.Errorf(attr, "Missing binary path", "%s must name a file", attr), false
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sdk.Errorf(attr, "Binary not found", "%s does not exist", path), false
	case err != nil:
		return sdk.Errorf(attr, "Binary not readable", "%v", err), false
	case !st.Mode().IsRegular():
		return sdk.Errorf(attr, "Not a binary", "%s is not a regular file", path), false
	}
	err = elfsym.CheckSymbol(path, symbol)
	switch {
	case errors.Is(err, elfsym.ErrNotELF):
		return sdk.Errorf(attr, "Not an ELF binary", "%s is not an ELF file", path), false
	case errors.Is(err, elfsym.ErrNoSymbol):
		return sdk.Errorf(attr, "Symbol not found",
			"%s does not define %s: is it the right binary? (symbols are looked up in .symtab and .dynsym)", path, symbol), false
	case err != nil:
		return sdk.Errorf(attr, "Binary not readable", "%v", err), false
	}
	return sdk.Diagnostic{}, true
}

// Spec describes the bytecode and the probes.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if m.bashPath == "" || m.readlinePath == "" {
		return nil, fmt.Errorf("describing probes: Init did not succeed")
	}
	return &ebpfbase.Spec{
		CoreObject:    bpf.Core,
		NonCoreObject: bpf.NonCore,
		Probes: []ebpfbase.Probe{
			{Section: "uprobe/rl_newline", Program: "uprobe_rl_newline", Symbol: symRLNewline, Binary: m.readlinePath},
			{Section: "uprobe/parse_command", Program: "uprobe_parse_command", Symbol: symParseCommand, Binary: m.bashPath},
		},
		Constants:      m.consts,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
	}, nil
}
