package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsafe is wrapped by every refusal of a file or directory another
// user could control.
var ErrUnsafe = errors.New("unsafe file")

// refuse returns the error refusing path for reason.
func refuse(path, reason string) error {
	return fmt.Errorf("refusing to write %s: %s: %w", path, reason, ErrUnsafe)
}

// Append opens path for writing at its end, creating it (mode 0600) when
// it does not exist; see the package documentation for what it refuses.
// The returned file is in blocking mode, opened with O_APPEND, and the
// caller owns it.
func Append(path string) (*os.File, error) {
	dfd, base, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	// A name that appears or disappears between the calls below (another
	// process creating or removing it) is looked at again, a few times.
	for range 4 {
		fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		f, err := openExisting(dfd, base, path)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("opening %s: the name keeps appearing and disappearing", path)
}

// openExisting opens the existing file base in the directory dfd for
// appending, after checking it by name (so that a FIFO or device is never
// opened) and again on the descriptor.
func openExisting(dfd int, base, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	if err := checkFile(path, &st); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should a FIFO take the name after the check, opening it
	// must not wait for a reader.
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, err
	case errors.Is(err, unix.ELOOP):
		return nil, refuse(path, "it is a symbolic link")
	case errors.Is(err, unix.ENXIO):
		return nil, refuse(path, "it is not a regular file")
	case err != nil:
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	if err := checkFile(path, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if st.Mode&0o077 != 0 {
		// Readable by group or others: the file will hold secrets.
		if err := unix.Fchmod(fd, 0o600); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("restricting %s to mode 0600: %w", path, err)
		}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Check reports whether Append would accept path, without creating or
// changing anything: nil for an acceptable existing file, or for a new
// file in a directory that exists, is acceptable, and can be written to.
func Check(path string) error {
	dfd, base, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Faccessat(dfd, ".", unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			return fmt.Errorf("cannot create %s: directory %s: %w", path, filepath.Dir(path), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	return checkFile(path, &st)
}

// Replace writes data to path through a new file in the same directory
// (mode 0600), renamed over path once complete and synced: a reader sees
// the old content or the new, and a symbolic link at path is replaced, not
// followed. The directory is checked as for Append.
func Replace(path string, data []byte) error {
	dfd, base, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return refuse(path, "it is a directory")
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + base + ".tmp-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: creating a temporary file: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(path), tmp))
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, base)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// openDir opens the directory of path and checks it; it returns its
// descriptor and the file's name in it.
func openDir(path string) (int, string, error) {
	base := filepath.Base(path)
	if strings.HasSuffix(path, "/") || base == "." || base == ".." {
		return -1, "", fmt.Errorf("writing %s: not a file name", path)
	}
	dir := filepath.Dir(path)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, "", fmt.Errorf("cannot write %s: directory %s does not exist: %w", path, dir, err)
	case errors.Is(err, unix.ENOTDIR):
		return -1, "", fmt.Errorf("cannot write %s: %s is not a directory", path, dir)
	case err != nil:
		return -1, "", fmt.Errorf("cannot write %s: opening directory %s: %w", path, dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		unix.Close(dfd)
		return -1, "", fmt.Errorf("cannot write %s: checking directory %s: %w", path, dir, err)
	}
	if st.Mode&0o002 != 0 && (st.Mode&unix.S_ISVTX == 0 || st.Uid != 0) {
		unix.Close(dfd)
		return -1, "", refuse(path, fmt.Sprintf("its directory %s is writable by others (mode %04o) and is not a sticky directory owned by root", dir, st.Mode&0o7777))
	}
	return dfd, base, nil
}

// checkFile says why the existing file path, as st describes it, may not
// be written.
func checkFile(path string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return refuse(path, "it is a symbolic link")
	case unix.S_IFDIR:
		return refuse(path, "it is a directory")
	case unix.S_IFIFO:
		return refuse(path, "it is a named pipe (FIFO), not a regular file")
	default:
		return refuse(path, "it is not a regular file")
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return refuse(path, fmt.Sprintf("it is owned by uid %d, not root or the user running this program (uid %d)", uid, os.Geteuid()))
	}
	if st.Mode&0o022 != 0 {
		return refuse(path, fmt.Sprintf("it is writable by group or others (mode %04o)", st.Mode&0o7777))
	}
	if st.Nlink > 1 {
		return refuse(path, fmt.Sprintf("it has %d hard links (another name could lead to it)", st.Nlink))
	}
	return nil
}
