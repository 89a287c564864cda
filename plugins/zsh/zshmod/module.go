package zshmod

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/plugins/zsh/bpf"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase/elfsym"
	"github.com/ecaphost/ecaphost/sdk/shellrec"
)

// Name and Version of the module.
const (
	Name    = "zsh"
	Version = "0.1.0"
)

// AttrZshBinary is the config attribute naming the zsh binary.
const AttrZshBinary = "zsh_binary"

// Symbols of the zsh binary the probes attach to or read (see
// kern/zsh_kern.c), with the constant each st_value is passed in.
var symbols = []struct{ name, constant string }{
	{"hend", "sym_hend"},           // probed: a line was read
	{"preprompt", "sym_preprompt"}, // probed: before the next prompt
	{"chline", "sym_chline"},       // read: start of the line
	{"hptr", "sym_hptr"},           // read: end of the line
	{"lastval", "sym_lastval"},     // read: $?
}

var schema = sdk.Schema{Attributes: []sdk.Attribute{{
	Name:        AttrZshBinary,
	Type:        sdk.TypeString,
	Default:     "/bin/zsh",
	Description: "Path of the zsh binary; it must define hend, preprompt, chline, hptr and lastval (zsh exports them).",
}}}

// Module captures zsh command lines: it is the module's ebpfbase.Hooks.
// Create it with New and serve ebpfbase.New(New()).
type Module struct {
	logger  hclog.Logger
	dec     shellrec.Decoder // Decode's
	zshPath string
	consts  map[string]any // link-time addresses for the probes
}

// New returns the zsh module's hooks.
func New() *Module {
	return &Module{logger: hclog.NewNullLogger(), dec: shellrec.Decoder{Shell: Name, LineMax: lineMax}}
}

// Info describes the module.
func (m *Module) Info() sdk.Info {
	return sdk.Info{
		Name:        Name,
		Version:     Version,
		Description: "Command lines typed into interactive zsh, and their exit status.",
		Schema:      schema,
	}
}

// Init checks zsh_binary and reads its symbols; it loads nothing.
func (m *Module) Init(_ context.Context, logger hclog.Logger, settings sdk.Settings, _ sdk.Sink) error {
	m.logger = logger
	path := settings.Config.WithDefaults(schema).String(AttrZshBinary)
	consts, d, ok := readSymbols(path)
	if !ok {
		return sdk.Diagnostics{d}
	}
	m.zshPath, m.consts = path, consts
	m.logger.Debug("zsh binary checked", "path", path)
	return nil
}

// readSymbols checks that path is a regular ELF file defining every
// symbol the probes need and returns their values as load constants.
func readSymbols(path string) (map[string]any, sdk.Diagnostic, bool) {
	bad := func(summary, format string, args ...any) (map[string]any, sdk.Diagnostic, bool) {
		return nil, sdk.Errorf(AttrZshBinary, summary, format, args...), false
	}
	if path == "" {
		return bad("Missing binary path", "%s must name the zsh binary", AttrZshBinary)
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("Binary not found", "%s does not exist", path)
	case err != nil:
		return bad("Binary not readable", "%v", err)
	case !st.Mode().IsRegular():
		return bad("Not a binary", "%s is not a regular file", path)
	}
	f, err := elfsym.Open(path)
	if errors.Is(err, elfsym.ErrNotELF) {
		return bad("Not an ELF binary", "%s is not an ELF file", path)
	} else if err != nil {
		return bad("Binary not readable", "%v", err)
	}
	defer f.Close()
	found := map[string]elf.Symbol{}
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if s.Section != elf.SHN_UNDEF && s.Value != 0 {
				found[s.Name] = s
			}
		}
	}
	consts := map[string]any{}
	for _, s := range symbols {
		sym, ok := found[s.name]
		if !ok {
			return bad("Not a supported zsh",
				"%s does not define %s: is it zsh? (this module probes zsh's hend and preprompt and reads chline, hptr and lastval, "+
					"looked up in .symtab and .dynsym)", path, s.name)
		}
		consts[s.constant] = sym.Value
	}
	switch size := found["lastval"].Size; size {
	case 4, 8:
		consts["lastval_size"] = uint32(size)
	default:
		return bad("Not a supported zsh", "%s: lastval is %d bytes, this module reads 4 or 8", path, size)
	}
	return consts, sdk.Diagnostic{}, true
}

// Spec describes the bytecode and the probes.
func (m *Module) Spec() (*ebpfbase.Spec, error) {
	if m.zshPath == "" {
		return nil, fmt.Errorf("describing probes: Init did not succeed")
	}
	return &ebpfbase.Spec{
		CoreObject:    bpf.Core,
		NonCoreObject: bpf.NonCore,
		Probes: []ebpfbase.Probe{
			{Section: "uprobe/hend", Program: "uprobe_hend", Symbol: "hend", Binary: m.zshPath},
			{Section: "uprobe/preprompt", Program: "uprobe_preprompt", Symbol: "preprompt", Binary: m.zshPath},
		},
		Constants:      m.consts,
		EventMaps:      []string{ebpfbase.EventsMap},
		LostCounterMap: ebpfbase.LostMap,
	}, nil
}
