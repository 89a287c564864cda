package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/pluginhost"
	"github.com/ecaphost/ecaphost/sdk/safefile"
	"github.com/hashicorp/go-hclog"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1 // the capture could not start or ended with an error
	exitConfig = 2 // bad config or command line: nothing was loaded
)

const usage = `ecaphost captures what processes on this host send and receive, with eBPF
capture modules that run as plugins (TLS plaintext, bash commands, keys).

Usage:
  ecaphost run [flags] [FILE]     capture with the modules FILE names (default: an
                                  embedded config running bash to stdout)
  ecaphost validate [flags] FILE  check FILE and the plugins' settings, load nothing
  ecaphost plugins [flags]        list the plugins found, their versions and paths
  ecaphost version                print the version
  ecaphost COMMAND --help         help for a command

Plugins are executables named ecaphost-plugin-NAME, searched in the config's
plugin_dir, then $ECAPHOST_PLUGIN_PATH (colon-separated), then plugins/ beside
the ecaphost binary.
`

// Main runs ecaphost with args (without the program name) and returns the
// exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if path := os.Getenv(envCPUProfile); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintf(stderr, "ecaphost: %s: %v\n", envCPUProfile, err)
			return exitFail
		}
		defer stop()
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "plugins":
		return cmdPlugins(rest, stdout, stderr)
	case "version", "--version":
		return cmdVersion(stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "ecaphost: unknown command %q\n\n%s", cmd, usage)
	return exitConfig
}

// envCPUProfile names a file for a CPU profile of the host (make bench
// uses it to see where the time goes); plugins read ECAPHOST_PLUGIN_CPUPROFILE.
const envCPUProfile = "ECAPHOST_CPUPROFILE"

func startCPUProfile(path string) (func(), error) {
	// Checked as every file ecaphost writes; a profile replaces the last.
	f, err := safefile.Append(path)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// common flags of every command.
type globalFlags struct {
	logLevel string
}

func newFlagSet(name, synopsis string, stderr io.Writer, g *globalFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ecaphost %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses fs and reports the exit code to return when parsing ended
// the command (help asked, or bad flags).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, true
	}
	if err != nil {
		return exitConfig, true
	}
	return 0, false
}

func (g *globalFlags) logger(stderr io.Writer) (hclog.Logger, error) {
	level := hclog.LevelFromString(g.logLevel)
	if level == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", g.logLevel)
	}
	opts := &hclog.LoggerOptions{Name: "ecaphost", Level: level, Output: stderr}
	if level > hclog.Debug {
		// go-plugin reports each plugin process start and exit at info
		// level; ecaphost says what matters itself.
		opts.Exclude = func(l hclog.Level, msg string, _ ...any) bool {
			return l < hclog.Warn && goPluginChatter[msg]
		}
	}
	return hclog.New(opts), nil
}

var goPluginChatter = map[string]bool{
	"plugin process exited": true,
	"plugin exited":         true,
	"starting plugin":       true,
	"plugin started":        true,
}

func cmdVersion(stdout io.Writer) int {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(stdout, "ecaphost %s\nmodule API versions %s, plugin handshake version %d\n",
		v, joinUints(sdk.APIVersions), pluginhost.HandshakeVersion)
	return exitOK
}

func joinUints(vs []uint32) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

// readConfig reads FILE, or the embedded default when name is empty.
func readConfig(name string) (string, []byte, error) {
	if name == "" {
		return defaultConfigName, defaultConfigSource, nil
	}
	src, err := os.ReadFile(name)
	if err != nil {
		return "", nil, fmt.Errorf("reading config: %w", err)
	}
	return name, src, nil
}
