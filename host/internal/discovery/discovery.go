package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Prefix is the file name prefix of every plugin executable.
const Prefix = "ecaphost-plugin-"

// EnvPath is the environment variable listing extra plugin directories.
const EnvPath = "ECAPHOST_PLUGIN_PATH"

// ErrNotFound is wrapped by Find's error when no directory holds the plugin.
var ErrNotFound = errors.New("plugin not found")

// ErrUntrusted is wrapped by errors about files the host refuses to run.
var ErrUntrusted = errors.New("untrusted plugin")

// Dirs returns the search path: pluginDir (may be empty), the entries of
// $ECAPHOST_PLUGIN_PATH, then plugins/ beside the running executable.
func Dirs(pluginDir string) []string {
	var dirs []string
	if pluginDir != "" {
		dirs = append(dirs, pluginDir)
	}
	for _, d := range strings.Split(os.Getenv(EnvPath), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return dirs
}

// Plugin is a plugin executable found on the search path.
type Plugin struct {
	Name string
	Path string // absolute, symlinks resolved
	// Link is the symbolic link the plugin was found through (absolute,
	// in a search directory), or "".
	Link string
}

// Find returns the first plugin called name in dirs. It does not check
// trust: Open does, before every run.
func Find(name string, dirs []string) (Plugin, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return Plugin{}, fmt.Errorf("invalid plugin name %q", name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, Prefix+name)
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		abs, err := resolve(p)
		if err != nil {
			return Plugin{}, err
		}
		found := Plugin{Name: name, Path: abs}
		if lst, err := os.Lstat(p); err == nil && lst.Mode()&os.ModeSymlink != 0 {
			if found.Link, err = filepath.Abs(p); err != nil {
				return Plugin{}, fmt.Errorf("resolving %s: %w", p, err)
			}
		}
		return found, nil
	}
	return Plugin{}, fmt.Errorf("no executable %s%s in %s: %w", Prefix, name, strings.Join(dirs, ", "), ErrNotFound)
}

func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", p, err)
	}
	return real, nil
}

// All lists every plugin on the search path; a name found twice is listed
// once, from the first directory holding it, as Find would choose.
func All(dirs []string) ([]Plugin, error) {
	seen := map[string]bool{}
	var out []Plugin
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing plugin directory %s: %w", d, err)
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), Prefix)
			if !ok || name == "" || seen[name] {
				continue
			}
			p, err := Find(name, []string{d})
			if err != nil {
				continue
			}
			seen[name] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Binary is a plugin executable opened and checked as opened. Run it by
// its descriptor (File), never by its path again: the checks hold for the
// file the descriptor holds, whatever then happens to the name.
type Binary struct {
	Plugin Plugin
	File   *os.File // read-only; the caller closes it with Close
	sum    string
}

// Open opens p's executable and refuses it (wrapping ErrUntrusted) when
// the file as opened is not a regular executable file, is writable by
// group or others, or is owned by a user other than root and the user
// running ecaphost; the same goes for every directory above it, since
// whoever can write a directory can swap the file (a sticky one above the
// file's own directory only lets owners replace their own names). A
// plugin found through a symbolic link is refused the same way when the
// link belongs to another user or its directory (or one above) fails
// the directory check: another user must not choose what runs as root.
func Open(p Plugin) (*Binary, error) {
	if p.Link != "" {
		lst, err := os.Lstat(p.Link)
		if err != nil {
			return nil, fmt.Errorf("checking plugin link %s: %w", p.Link, err)
		}
		if err := checkOwner(p.Link, lst); err != nil {
			return nil, err
		}
		if err := checkDirs(p.Link); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(p.Path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening plugin: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		err = checkExecutable(p.Path, st)
	}
	if err == nil {
		err = checkDirs(p.Path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Binary{Plugin: p, File: f}, nil
}

// Close closes the file.
func (b *Binary) Close() error { return b.File.Close() }

// SHA256 returns the hex SHA-256 of the file as opened, read through the
// descriptor (computed once).
func (b *Binary) SHA256() (string, error) {
	if b.sum != "" {
		return b.sum, nil
	}
	st, err := b.File.Stat()
	if err != nil {
		return "", fmt.Errorf("hashing plugin %s: %w", b.Plugin.Path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b.File, 0, st.Size())); err != nil {
		return "", fmt.Errorf("hashing plugin %s: %w", b.Plugin.Path, err)
	}
	b.sum = hex.EncodeToString(h.Sum(nil))
	return b.sum, nil
}

// Check opens p as Open does and closes it: nil when it may run now.
func Check(p Plugin) error {
	b, err := Open(p)
	if err != nil {
		return err
	}
	return b.Close()
}

func checkExecutable(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("plugin %s is not a regular file: %w", path, ErrUntrusted)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s is not executable: %w", path, ErrUntrusted)
	}
	return checkOwnerMode(path, st)
}

// checkDirs checks every directory above path.
func checkDirs(path string) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		dst, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("checking plugin directory %s: %w", dir, err)
		}
		// A sticky world-writable directory (/tmp) only lets owners
		// replace their own files; the file check covers that.
		if dst.Mode()&os.ModeSticky == 0 || dir == filepath.Dir(path) {
			if err := checkOwnerMode(dir, dst); err != nil {
				return err
			}
		}
		if dir == "/" || dir == "." {
			return nil
		}
	}
}

func checkOwnerMode(path string, st fs.FileInfo) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("refusing plugin: %s is writable by group or others (mode %04o); run chmod go-w %s: %w",
			path, st.Mode().Perm(), path, ErrUntrusted)
	}
	return checkOwner(path, st)
}

func checkOwner(path string, st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(sys.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("refusing plugin: %s is owned by uid %d, not root or the user running ecaphost: %w", path, uid, ErrUntrusted)
	}
	return nil
}
