package lock

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// DefaultName is the lock file's name beside a config file.
const DefaultName = "ecaphost.lock"

// formatVersion is the version of the file format this package writes.
const formatVersion = 1

// ErrMismatch is wrapped by Verify's error for a plugin whose bytes differ
// from the lock; ErrNotLocked for a plugin the lock does not list.
var (
	ErrMismatch  = errors.New("plugin does not match the lock file")
	ErrNotLocked = errors.New("plugin is not in the lock file")
)

// Entry is one locked plugin.
type Entry struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// File is a lock file's content.
type File struct {
	Version int     `json:"version"`
	Plugins []Entry `json:"plugins"`
	path    string
}

// Path returns where the file was read from or written to.
func (f *File) Path() string { return f.path }

// PathFor returns the lock file path: explicit when set, else DefaultName
// beside the config file, else DefaultName in the working directory.
func PathFor(explicit, configFile string) string {
	switch {
	case explicit != "":
		return explicit
	case configFile != "":
		return filepath.Join(filepath.Dir(configFile), DefaultName)
	}
	return DefaultName
}

// Read reads the lock file at path. A missing file is (nil, nil): no lock
// is in force.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("reading lock file %s: %w", path, err)
	}
	if f.Version != formatVersion {
		return nil, fmt.Errorf("reading lock file %s: format version %d, this ecaphost reads %d", path, f.Version, formatVersion)
	}
	for i, e := range f.Plugins {
		if e.Name == "" || len(e.SHA256) != 64 {
			return nil, fmt.Errorf("reading lock file %s: entry %d: want a name and a 64-digit hex sha256", path, i+1)
		}
		if _, err := hex.DecodeString(e.SHA256); err != nil {
			return nil, fmt.Errorf("reading lock file %s: entry %d (%s): sha256: %w", path, i+1, e.Name, err)
		}
	}
	f.path = path
	return &f, nil
}

// Write writes entries to path (sorted by name), replacing the file
// atomically with one of mode 0600 (safefile.Replace: a symbolic link at
// path is replaced, not followed).
func Write(path string, entries []Entry) (*File, error) {
	f := &File{Version: formatVersion, Plugins: append([]Entry(nil), entries...), path: path}
	sort.Slice(f.Plugins, func(i, j int) bool { return f.Plugins[i].Name < f.Plugins[j].Name })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := safefile.Replace(path, append(b, '\n')); err != nil {
		return nil, fmt.Errorf("writing lock file: %w", err)
	}
	return f, nil
}

// Lookup returns the entry of the plugin called name.
func (f *File) Lookup(name string) (Entry, bool) {
	for _, e := range f.Plugins {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Verify checks that the plugin name, whose binary hashes to sum, is the
// one the lock approved. The error names the plugin, both digests and
// the lock file.
func (f *File) Verify(name, sum string) (Entry, error) {
	e, ok := f.Lookup(name)
	if !ok {
		return Entry{}, fmt.Errorf("plugin %s: not in lock file %s; run `ecaphost plugins lock` to approve it: %w", name, f.path, ErrNotLocked)
	}
	if e.SHA256 != sum {
		return e, fmt.Errorf("plugin %s: its binary's SHA-256 is %s, lock file %s approved %s: %w", name, sum, f.path, e.SHA256, ErrMismatch)
	}
	return e, nil
}
