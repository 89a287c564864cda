package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/lifecycle"
	"github.com/ecaphost/ecaphost/host/internal/lock"
	"github.com/ecaphost/ecaphost/host/internal/output"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

var (
	defaultConfigName   = config.DefaultFilename
	defaultConfigSource = config.DefaultSource
)

// module is a module block whose plugin was found and checked; launched
// is set once its plugin runs and accepted its settings.
type module struct {
	decl     *config.Module
	plugin   lifecycle.Plugin
	launched *lifecycle.Launched
	settings sdk.Settings
}

// settingsFor returns the module's settings for a plugin that described
// itself as info: the config block decoded against its schema.
func (m *module) settingsFor(filename string, src []byte, checkOnly bool) lifecycle.SettingsFunc {
	return func(info sdk.Info) (sdk.Settings, error) {
		if m.launched != nil && m.launched.Info.Version == info.Version {
			return m.settings, nil
		}
		cfg, diags := m.decl.DecodeConfig(info.Schema)
		if diags.HasErrors() {
			var b strings.Builder
			writeDiags(&b, filename, src, diags)
			return sdk.Settings{}, fmt.Errorf("config of module %s: %s", m.decl.Name, strings.TrimSpace(b.String()))
		}
		return sdk.Settings{Common: m.decl.Common, Config: cfg, CheckOnly: checkOnly}, nil
	}
}

// prepared is a config whose modules' plugins were found and checked.
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

// resolve parses the config, finds each module's plugin and checks it
// (trust, and the lock file when one is in force). It runs nothing.
// Diagnostics carry file:line:col.
func resolve(filename string, src []byte, lf *lock.File) (*prepared, hcl.Diagnostics) {
	file, diags := config.Parse(filename, src)
	if diags.HasErrors() {
		return nil, diags
	}
	if len(file.Modules) == 0 {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No module",
			Detail:   `The file declares no module block, so there is nothing to capture. Add one, e.g. module "bash" {}; ` + "`ecaphost plugins`" + ` lists the plugins installed.`,
			Subject:  &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		})
	}
	if d := pluginDirDiag(file); d != nil {
		return nil, append(diags, d)
	}
	p := &prepared{file: file}
	dirs := discovery.Dirs(file.PluginDir)
	for i := range file.Modules {
		m, ds := resolveModule(&file.Modules[i], dirs, lf)
		diags = append(diags, ds...)
		if m != nil {
			p.modules = append(p.modules, m)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// pluginDirDiag refuses a plugin_dir that is not a directory: a typo must
// not fall back silently to other plugins.
func pluginDirDiag(file *config.File) *hcl.Diagnostic {
	if file.PluginDir == "" {
		return nil
	}
	st, err := os.Stat(file.PluginDir)
	if err == nil && !st.IsDir() {
		err = fmt.Errorf("%s is not a directory", file.PluginDir)
	}
	if err == nil {
		return nil
	}
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin directory not found", Detail: fmt.Sprintf("plugin_dir: %v", err)}
	if file.PluginDirRange.Filename != "" {
		d.Subject = file.PluginDirRange.Ptr()
	}
	return d
}

func resolveModule(decl *config.Module, dirs []string, lf *lock.File) (*module, hcl.Diagnostics) {
	found, err := discovery.Find(decl.Name, dirs)
	if errors.Is(err, discovery.ErrNotFound) {
		return nil, hcl.Diagnostics{decl.LabelDiag("Unknown plugin",
			fmt.Sprintf("%v; `ecaphost plugins` lists the plugins installed", err))}
	}
	if err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Invalid plugin", err.Error())}
	}
	bin, err := discovery.Open(found)
	if err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Untrusted plugin", err.Error())}
	}
	defer bin.Close()
	plug := lifecycle.Plugin{Name: decl.Name, Path: found.Path, Link: found.Link}
	if lf != nil {
		plug.Verify = lockVerifier(lf, decl.Name)
		sum, err := bin.SHA256()
		if err == nil {
			err = plug.Verify(sum)
		}
		if err != nil {
			return nil, hcl.Diagnostics{decl.LabelDiag("Plugin not approved by the lock file", err.Error())}
		}
	}
	return &module{decl: decl, plugin: plug}, nil
}

// lockVerifier checks a plugin's checksum against the lock file; every
// launch calls it on the file it is about to execute.
func lockVerifier(lf *lock.File, name string) func(string) error {
	return func(sum string) error {
		_, err := lf.Verify(name, sum)
		return err
	}
}

// launch launches m's plugin, decodes its config block against the
// schema the plugin declares and has it check its settings. A plugin that
// cannot be launched is err; configuration problems are diagnostics, and
// with errors among them the plugin is killed. t is how it sends events.
func (m *module) launch(ctx context.Context, checkOnly bool, t pluginhost.Transport, logger hclog.Logger) (hcl.Diagnostics, error) {
	l, err := lifecycle.Launch(ctx, m.plugin, logger)
	if err != nil {
		return nil, err
	}
	cfg, diags := m.decl.DecodeConfig(l.Info.Schema)
	if diags.HasErrors() {
		l.Kill()
		return diags, nil
	}
	settings := sdk.Settings{Common: m.decl.Common, Config: cfg, CheckOnly: checkOnly}
	ds, err := l.Configure(ctx, settings, t)
	if err != nil {
		l.Kill()
		return hcl.Diagnostics{m.decl.LabelDiag("Plugin failed to configure", err.Error())}, nil
	}
	diags = append(diags, m.decl.PluginDiags(ds)...)
	if diags.HasErrors() {
		l.Kill()
		return diags, nil
	}
	m.launched, m.settings = l, settings
	return diags, nil
}

// launchAll launches every module at once (none waits for another's
// plugin) and returns their diagnostics in file order; a plugin that
// cannot be launched is an error diagnostic. With errors, every plugin
// launched is killed.
func (p *prepared) launchAll(ctx context.Context, checkOnly bool, logger hclog.Logger) hcl.Diagnostics {
	results := make([]hcl.Diagnostics, len(p.modules))
	var wg sync.WaitGroup
	for i, m := range p.modules {
		wg.Go(func() {
			diags, err := m.launch(ctx, checkOnly, pluginhost.Transport{}, logger)
			if err != nil {
				diags = hcl.Diagnostics{m.decl.LabelDiag("Plugin failed to start", err.Error())}
			}
			results[i] = diags
		})
	}
	wg.Wait()
	var diags hcl.Diagnostics
	for _, ds := range results {
		diags = append(diags, ds...)
	}
	if diags.HasErrors() {
		p.kill()
	}
	return diags
}

// readLock reads the lock file in force: --lock, else ecaphost.lock beside
// the config file (none for the embedded default config).
func readLock(explicit, configFile string) (*lock.File, error) {
	if explicit == "" && configFile == "" {
		return nil, nil
	}
	path := lock.PathFor(explicit, configFile)
	lf, err := lock.Read(path)
	if err != nil {
		return nil, err
	}
	if lf == nil && explicit != "" {
		return nil, fmt.Errorf("lock file %s does not exist", explicit)
	}
	return lf, nil
}

// inputs are what run and validate read before preparing: the logger, the
// config (FILE, or the embedded default) and the lock file in force.
type inputs struct {
	logger hclog.Logger
	name   string
	src    []byte
	lock   *lock.File
}

func loadInputs(g *globalFlags, configFile, lockPath string, stderr io.Writer) (*inputs, error) {
	logger, err := g.logger(stderr)
	if err != nil {
		return nil, err
	}
	name, src, err := readConfig(configFile)
	if err != nil {
		return nil, err
	}
	lf, err := readLock(lockPath, configFile)
	if err != nil {
		return nil, err
	}
	return &inputs{logger: logger, name: name, src: src, lock: lf}, nil
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
	lockPath := fs.String("lock", "", "lock file of approved plugin checksums (default: ecaphost.lock beside FILE, when present)")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitConfig
	}
	in, err := loadInputs(&g, fs.Arg(0), *lockPath, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	logger, name, src := in.logger, in.name, in.src
	p, diags := resolve(name, src, in.lock)
	if p != nil {
		diags = append(diags, p.launchAll(context.Background(), true, logger)...)
		// Outputs are checked as run opens them, creating nothing.
		for _, oc := range p.file.Outputs {
			if err := output.Check(oc); err != nil {
				diags = append(diags, outputDiag(oc, err))
			}
		}
		if diags.HasErrors() {
			p.kill()
			p = nil
		}
	}
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
