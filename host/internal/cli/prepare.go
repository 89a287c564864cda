package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/supervise"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

var (
	defaultConfigName   = config.DefaultFilename
	defaultConfigSource = config.DefaultSource
)

// module is a module block whose plugin was launched and accepted its
// settings, ready to start.
type module struct {
	decl     *config.Module
	launched *supervise.Launched
	settings sdk.Settings
}

// prepared is a config checked down to every plugin's own diagnostics.
type prepared struct {
	file    *config.File
	modules []*module
}

// kill ends every launched plugin.
func (p *prepared) kill() {
	for _, m := range p.modules {
		if m.launched != nil {
			m.launched.Kill()
		}
	}
}

// prepare parses the config, finds and checks each plugin, launches it,
// decodes its config block against the schema it declares and has it check
// its settings. Nothing is loaded into the kernel. Diagnostics carry
// file:line:col; on errors every launched plugin is killed.
func prepare(ctx context.Context, filename string, src []byte, checkOnly bool, logger hclog.Logger) (*prepared, hcl.Diagnostics) {
	file, diags := config.Parse(filename, src)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &prepared{file: file}
	dirs := discovery.Dirs(file.PluginDir)
	for i := range file.Modules {
		decl := &file.Modules[i]
		m, ds := prepareModule(ctx, decl, dirs, checkOnly, logger)
		diags = append(diags, ds...)
		if m != nil {
			p.modules = append(p.modules, m)
		}
	}
	if diags.HasErrors() {
		p.kill()
		return nil, diags
	}
	return p, diags
}

func prepareModule(ctx context.Context, decl *config.Module, dirs []string, checkOnly bool, logger hclog.Logger) (*module, hcl.Diagnostics) {
	found, err := discovery.Find(decl.Name, dirs)
	if errors.Is(err, discovery.ErrNotFound) {
		return nil, hcl.Diagnostics{decl.LabelDiag("Unknown plugin",
			fmt.Sprintf("%v; `ecaphost plugins` lists the plugins installed", err))}
	}
	if err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Invalid plugin", err.Error())}
	}
	if err := discovery.Check(found.Path); err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Untrusted plugin", err.Error())}
	}
	l, err := supervise.Launch(ctx, supervise.Plugin{Name: decl.Name, Path: found.Path}, logger)
	if err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Plugin failed to start", err.Error())}
	}
	cfg, diags := decl.DecodeConfig(l.Info.Schema)
	if diags.HasErrors() {
		l.Kill()
		return nil, diags
	}
	settings := sdk.Settings{Common: decl.Common, Config: cfg, CheckOnly: checkOnly}
	ds, err := l.Configure(ctx, settings, sdk.Transport{})
	if err != nil {
		l.Kill()
		return nil, hcl.Diagnostics{decl.LabelDiag("Plugin failed to configure", err.Error())}
	}
	diags = append(diags, decl.PluginDiags(ds)...)
	if diags.HasErrors() {
		l.Kill()
		return nil, diags
	}
	return &module{decl: decl, launched: l, settings: settings}, diags
}

func writeDiags(w io.Writer, filename string, src []byte, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	_ = config.WriteDiagnostics(w, map[string][]byte{filename: src}, diags)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	fs := newFlagSet("validate", "validate [flags] FILE\n\nChecks FILE: syntax, attributes, that each module's plugin is found and trusted,\nand each plugin's own settings. Launches the plugins but loads nothing into the\nkernel. Exit status 0 when valid, 2 otherwise.", stderr, &g)
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitConfig
	}
	logger, err := g.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	name, src, err := readConfig(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	p, diags := prepare(context.Background(), name, src, true, logger)
	writeDiags(stderr, name, src, diags)
	if p == nil {
		return exitConfig
	}
	defer p.kill()
	fmt.Fprintf(stdout, "%s: valid: %d module(s)", name, len(p.modules))
	for i, m := range p.modules {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(stdout, "%s%s %s", sep, m.decl.Name, m.launched.Info.Version)
	}
	fmt.Fprintf(stdout, "; %d output(s)\n", len(p.file.Outputs))
	return exitOK
}
