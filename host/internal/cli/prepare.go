package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/lock"
	"github.com/ecaphost/ecaphost/host/internal/supervise"
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
)

var (
	defaultConfigName   = config.DefaultFilename
	defaultConfigSource = config.DefaultSource
)

// module is a module block whose plugin was launched and accepted its
// settings, ready to start; or, for run, one whose plugin failed to
// launch (launchErr), which the runner keeps trying to start.
type module struct {
	decl      *config.Module
	plugin    supervise.Plugin
	launched  *supervise.Launched
	settings  sdk.Settings
	launchErr error
}

// settingsFor returns the module's settings for a plugin that described
// itself as info: the config block decoded against its schema.
func (m *module) settingsFor(filename string, src []byte, checkOnly bool) supervise.SettingsFunc {
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
//
// With deferLaunch (run), a plugin that fails to launch (garbage on
// stdout, exits at once, no handshake in time) does not stop the others:
// its module is returned with launchErr set. Configuration errors always
// stop everything: nothing is loaded.
func prepare(ctx context.Context, filename string, src []byte, checkOnly, deferLaunch bool, startTimeout time.Duration, lf *lock.File, logger hclog.Logger) (*prepared, hcl.Diagnostics) {
	file, diags := config.Parse(filename, src)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &prepared{file: file}
	dirs := discovery.Dirs(file.PluginDir)
	for i := range file.Modules {
		decl := &file.Modules[i]
		m, ds := prepareModule(ctx, decl, dirs, checkOnly, deferLaunch, startTimeout, lf, logger)
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

func prepareModule(ctx context.Context, decl *config.Module, dirs []string, checkOnly, deferLaunch bool, startTimeout time.Duration, lf *lock.File, logger hclog.Logger) (*module, hcl.Diagnostics) {
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
	plug := supervise.Plugin{Name: decl.Name, Path: found.Path, StartTimeout: startTimeout}
	if lf != nil {
		secure, err := lockedConfig(lf, decl.Name, found.Path)
		if err != nil {
			return nil, hcl.Diagnostics{decl.LabelDiag("Plugin not approved by the lock file", err.Error())}
		}
		plug.Secure = secure
	}
	l, err := supervise.Launch(ctx, plug, logger)
	if err != nil && deferLaunch {
		return &module{decl: decl, plugin: plug, launchErr: err}, nil
	}
	if err != nil {
		return nil, hcl.Diagnostics{decl.LabelDiag("Plugin failed to start", err.Error())}
	}
	cfg, diags := decl.DecodeConfig(l.Info.Schema)
	if diags.HasErrors() {
		l.Kill()
		return nil, diags
	}
	settings := sdk.Settings{Common: decl.Common, Config: cfg, CheckOnly: checkOnly}
	ds, err := l.Configure(ctx, settings, pluginhost.Transport{})
	if err != nil {
		l.Kill()
		return nil, hcl.Diagnostics{decl.LabelDiag("Plugin failed to configure", err.Error())}
	}
	diags = append(diags, decl.PluginDiags(ds)...)
	if diags.HasErrors() {
		l.Kill()
		return nil, diags
	}
	return &module{decl: decl, plugin: plug, launched: l, settings: settings}, diags
}

// lockedConfig checks the plugin at path against the lock file and
// returns the go-plugin SecureConfig that checks it again right before
// each exec (a restart included).
func lockedConfig(lf *lock.File, name, path string) (*plugin.SecureConfig, error) {
	sum, err := discovery.SHA256(path)
	if err != nil {
		return nil, err
	}
	if _, err := lf.Verify(name, sum); err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return nil, err
	}
	return &plugin.SecureConfig{Checksum: raw, Hash: sha256.New()}, nil
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
	p, diags := prepare(context.Background(), name, src, true, false, 0, in.lock, logger)
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
