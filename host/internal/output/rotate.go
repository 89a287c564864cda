package output

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ecaphost/ecaphost/host/internal/config"
	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// rotatedLayout is the timestamp a rotated file's name ends with:
// PATH.20060102T150405.000Z, so names sort by time.
const rotatedLayout = "20060102T150405.000Z"

// fileSink is the file of a file output. Writes go to the file at path;
// Reopen (SIGHUP) closes it and opens path again, as logrotate's create
// mode expects; with rotation set, a write that would take the file past
// MaxMiB, or one after MaxAge, first renames it to PATH.TIMESTAMP,
// removes the oldest rotated files beyond Keep and starts a new one. The
// Writer writes whole events only, so no event is split across files.
// Its methods are safe for concurrent use.
type fileSink struct {
	path   string
	rotate *config.Rotate // nil: no rotation

	mu     sync.Mutex
	f      *os.File
	size   int64
	opened time.Time
	now    func() time.Time
}

func openFileSink(path string, rotate *config.Rotate) (*fileSink, error) {
	s := &fileSink{path: path, rotate: rotate, now: time.Now}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens s.path; mu must be held (or s not shared yet).
func (s *fileSink) open() error {
	f, err := safefile.Append(s.path) // 0600, no link, no other user's file
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size, s.opened = f, fi.Size(), s.now()
	return nil
}

func (s *fileSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, os.ErrClosed
	}
	if s.due(len(b)) {
		if err := s.rotateNow(); err != nil {
			if s.f == nil {
				return 0, err
			}
			// Keep writing to the current file: better too large than lost.
			n, werr := s.f.Write(b)
			s.size += int64(n)
			return n, errors.Join(werr, err)
		}
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	return n, err
}

// due tells whether a write of n bytes must go to a new file.
func (s *fileSink) due(n int) bool {
	r := s.rotate
	if r == nil || s.size == 0 {
		return false
	}
	return r.MaxBytes > 0 && s.size+int64(n) > r.MaxBytes || r.MaxAge > 0 && s.now().Sub(s.opened) >= r.MaxAge
}

// rotateNow renames the current file, opens a new one and removes the
// oldest rotated files beyond Keep. mu must be held.
func (s *fileSink) rotateNow() error {
	name := s.path + "." + s.now().UTC().Format(rotatedLayout)
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s.%s-%d", s.path, s.now().UTC().Format(rotatedLayout), i)
	}
	if err := os.Rename(s.path, name); err != nil {
		return fmt.Errorf("rotating %s: %w", s.path, err)
	}
	old := s.f
	if err := s.open(); err != nil {
		s.f = old // the renamed file takes the writes until the next try
		return fmt.Errorf("rotating %s: opening the new file: %w", s.path, err)
	}
	cerr := old.Close()
	return errors.Join(cerr, s.prune())
}

// prune removes the oldest rotated files beyond Keep.
func (s *fileSink) prune() error {
	rotated, err := s.rotated()
	if err != nil || s.rotate.Keep <= 0 || len(rotated) <= s.rotate.Keep {
		return err
	}
	var errs []error
	for _, p := range rotated[:len(rotated)-s.rotate.Keep] {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing rotated file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// rotated lists the rotated files of s.path, oldest first.
func (s *fileSink) rotated() ([]string, error) {
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing rotated files: %w", err)
	}
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || len(rest) < len(rotatedLayout) || !e.Type().IsRegular() {
			continue
		}
		if _, err := time.Parse(rotatedLayout, rest[:len(rotatedLayout)]); err != nil {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// Reopen closes the file and opens path again: after a logrotate mv, the
// file of that name is created (0600) and takes every later write.
func (s *fileSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return os.ErrClosed
	}
	old := s.f
	if err := s.open(); err != nil {
		s.f = old
		return fmt.Errorf("reopening %s: %w", s.path, err)
	}
	return old.Close()
}

// Stat and Truncate act on the current file (the Writer takes back the
// part of an event a short write cut).
func (s *fileSink) Stat() (os.FileInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Stat()
}

func (s *fileSink) Truncate(size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	s.size = size
	return nil
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Reopen makes a file output close its file and open its path again
// (SIGHUP, after logrotate moved the file). It does nothing for stdout.
func (o *Writer) Reopen() error {
	if r, ok := o.sink.(interface{ Reopen() error }); ok {
		return r.Reopen()
	}
	return nil
}
