package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/supervise"
)

func cmdPlugins(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	fs := newFlagSet("plugins", "plugins [flags]\n\nLists every plugin on the search path: name, version, module API versions,\npath and SHA-256. Each plugin is launched to ask its version.", stderr, &g)
	configFile := fs.String("config", "", "take plugin_dir from this config file")
	if code, done := parse(fs, args); done {
		return code
	}
	logger, err := g.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	pluginDir := ""
	if *configFile != "" {
		name, src, err := readConfig(*configFile)
		if err != nil {
			fmt.Fprintf(stderr, "ecaphost: %v\n", err)
			return exitConfig
		}
		file, diags := config.Parse(name, src)
		writeDiags(stderr, name, src, diags)
		if diags.HasErrors() {
			return exitConfig
		}
		pluginDir = file.PluginDir
	}
	dirs := discovery.Dirs(pluginDir)
	found, err := discovery.All(dirs)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitFail
	}
	if len(found) == 0 {
		fmt.Fprintf(stderr, "ecaphost: no plugins (ecaphost-plugin-NAME) in %v\n", dirs)
		return exitFail
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tAPI\tPATH\tSHA256\tSTATUS")
	code := exitOK
	for _, p := range found {
		sum, err := discovery.SHA256(p.Path)
		if err != nil {
			sum = "?"
		}
		version, api, status := "?", "?", "ok"
		if err := discovery.Check(p.Path); err != nil {
			status, code = "refused: "+err.Error(), exitFail
		} else if l, err := supervise.Launch(context.Background(), supervise.Plugin{Name: p.Name, Path: p.Path}, logger); err != nil {
			status, code = "broken: "+err.Error(), exitFail
		} else {
			version, api = l.Info.Version, joinUints(l.Info.APIVersions)
			l.Kill()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, version, api, p.Path, sum, status)
	}
	tw.Flush()
	return code
}
