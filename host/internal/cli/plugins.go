package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/host/internal/discovery"
	"github.com/ecaphost/ecaphost/host/internal/lifecycle"
	"github.com/ecaphost/ecaphost/host/internal/lock"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
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
		if d := pluginDirDiag(file); d != nil {
			writeDiags(stderr, name, src, hcl.Diagnostics{d})
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
		row := pluginRow(p, lf, logger)
		if row.failed {
			code = exitFail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, row.version, row.api, p.Path, row.sum, row.locked, row.status)
	}
	tw.Flush()
	if lf != nil {
		fmt.Fprintf(stdout, "lock file: %s\n", lf.Path())
	}
	return code
}

// row is what `ecaphost plugins` says of one plugin.
type row struct {
	version, api, sum, locked, status string
	failed                            bool
}

// pluginRow checks p as every launch does (the file as opened, then the
// lock), and only when it passes launches it to ask its version: a plugin
// the lock does not approve is never executed.
func pluginRow(p discovery.Plugin, lf *lock.File, logger hclog.Logger) row {
	r := row{version: "?", api: "?", sum: "?", locked: "no lock file", status: "ok"}
	bin, err := discovery.Open(p)
	if err != nil {
		r.status, r.failed = "refused: "+err.Error(), true
		return r
	}
	sum, err := bin.SHA256()
	bin.Close()
	if err != nil {
		r.status, r.failed = "refused: "+err.Error(), true
		return r
	}
	r.sum = sum
	plug := lifecycle.Plugin{Name: p.Name, Path: p.Path, Link: p.Link}
	if lf != nil {
		plug.Verify = lockVerifier(lf, p.Name)
		err := plug.Verify(sum)
		switch {
		case err == nil:
			r.locked = "matches"
		case errors.Is(err, lock.ErrNotLocked):
			r.locked, r.status, r.failed = "NOT LOCKED", "not run: not in the lock file", true
			return r
		default:
			r.locked, r.status, r.failed = "MISMATCH", "not run: changed since locked", true
			return r
		}
	}
	l, err := lifecycle.Launch(context.Background(), plug, logger)
	if err != nil {
		r.status, r.failed = "broken: "+err.Error(), true
		return r
	}
	r.version, r.api = l.Info.Version, joinUints(l.Info.APIVersions)
	l.Kill()
	return r
}

// writeLock approves every trusted plugin found; an untrusted one is
// refused, not locked.
func writeLock(path string, found []discovery.Plugin, stdout, stderr io.Writer) int {
	var entries []lock.Entry
	for _, p := range found {
		bin, err := discovery.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "ecaphost: not locking plugin %s: %v\n", p.Name, err)
			return exitFail
		}
		sum, err := bin.SHA256()
		bin.Close()
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
