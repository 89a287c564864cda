package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/lock"
	"github.com/ecaphost/ecaphost/host/internal/supervise"
)

func cmdPlugins(args []string, stdout, stderr io.Writer) int {
	locking := len(args) > 0 && args[0] == "lock"
	if locking {
		args = args[1:]
	}
	var g globalFlags
	synopsis := "plugins [flags]\n\nLists every plugin on the search path: name, version, module API versions,\npath, SHA-256 and whether it matches the lock file. Each plugin is launched\nto ask its version. `ecaphost plugins lock` writes the lock file instead."
	if locking {
		synopsis = "plugins lock [flags]\n\nWrites the lock file: the SHA-256 of every trusted plugin on the search path.\nWhile a lock file is in force, run and validate refuse a plugin missing from\nit or whose binary changed."
	}
	fs := newFlagSet("plugins", synopsis, stderr, &g)
	configFile := fs.String("config", "", "take plugin_dir from this config file; the lock file defaults to ecaphost.lock beside it")
	lockPath := fs.String("lock", "", "lock file path (default: ecaphost.lock beside --config, else in the working directory)")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitConfig
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
		fmt.Fprintf(stderr, "ecaphost: no plugins (%sNAME) in %v\n", discovery.Prefix, dirs)
		return exitFail
	}
	path := lock.PathFor(*lockPath, *configFile)
	if locking {
		return writeLock(path, found, stdout, stderr)
	}
	lf, err := lock.Read(path)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitConfig
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tAPI\tPATH\tSHA256\tLOCK\tSTATUS")
	code := exitOK
	for _, p := range found {
		sum, err := discovery.SHA256(p.Path)
		if err != nil {
			sum = "?"
		}
		locked := "no lock file"
		if lf != nil {
			_, err := lf.Verify(p.Name, sum)
			switch {
			case err == nil:
				locked = "matches"
			case errors.Is(err, lock.ErrNotLocked):
				locked, code = "NOT LOCKED", exitFail
			default:
				locked, code = "MISMATCH", exitFail
			}
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, version, api, p.Path, sum, locked, status)
	}
	tw.Flush()
	if lf != nil {
		fmt.Fprintf(stdout, "lock file: %s\n", lf.Path())
	}
	return code
}

// writeLock approves every trusted plugin found; an untrusted one is
// refused, not locked.
func writeLock(path string, found []discovery.Plugin, stdout, stderr io.Writer) int {
	var entries []lock.Entry
	for _, p := range found {
		if err := discovery.Check(p.Path); err != nil {
			fmt.Fprintf(stderr, "ecaphost: not locking plugin %s: %v\n", p.Name, err)
			return exitFail
		}
		sum, err := discovery.SHA256(p.Path)
		if err != nil {
			fmt.Fprintf(stderr, "ecaphost: %v\n", err)
			return exitFail
		}
		entries = append(entries, lock.Entry{Name: p.Name, Path: p.Path, SHA256: sum})
	}
	lf, err := lock.Write(path, entries)
	if err != nil {
		fmt.Fprintf(stderr, "ecaphost: %v\n", err)
		return exitFail
	}
	for _, e := range lf.Plugins {
		fmt.Fprintf(stdout, "locked %s %s %s\n", e.Name, e.SHA256, e.Path)
	}
	fmt.Fprintf(stdout, "wrote %s (%d plugins)\n", lf.Path(), len(lf.Plugins))
	return exitOK
}
