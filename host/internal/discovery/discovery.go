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
}

// Find returns the first plugin called name in dirs. It does not check
// trust: call Check before running it.
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
		return Plugin{Name: name, Path: abs}, nil
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

// Check refuses a plugin the host must not run: not a regular executable
// file, or writable by group or others, or owned by a user other than root
// and the user running ecaphost — the file itself and every directory
// above it, since whoever can write a directory can swap the file.
func Check(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking plugin %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("plugin %s is not a regular file: %w", path, ErrUntrusted)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s is not executable: %w", path, ErrUntrusted)
	}
	if err := checkOwnerMode(path, st); err != nil {
		return err
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		dst, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("checking plugin directory %s: %w", dir, err)
		}
		// A sticky world-writable directory (/tmp) only lets owners
		// replace their own files; the file check above covers that.
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
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(sys.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("refusing plugin: %s is owned by uid %d, not root or the user running ecaphost: %w", path, uid, ErrUntrusted)
	}
	return nil
}

// SHA256 returns the hex SHA-256 of the file at path.
func SHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing plugin: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing plugin %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
