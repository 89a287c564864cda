package ebpfbase

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// FoundFile is a file node-wide discovery probes (Object.FoundFiles): a
// library or executable of the kind of one of the spec's binaries, or a
// copy of it (a container's own libssl), found in some process.
type FoundFile struct {
	// ID tells files apart; it is never reused while the module runs.
	ID uint64
	// Name is the file's path as the process it was found in sees it,
	// PID that process (it may have exited since).
	Name string
	PID  uint32
	// Binary is the spec binary (Probe.Binary) whose probes the file got.
	Binary string
}

// ErrFileReleased is wrapped by Object.AttachFoundUprobes for a file
// discovery no longer probes (no process reaches it any more, or the
// module is closing).
var ErrFileReleased = errors.New("node-wide discovery released the file")

// foundSet holds the files discovery probes, each with a descriptor open
// on it, so that a module can attach probes of its own later (the
// fallback probes of openssl's key modes) to the very file discovery
// probed, whatever its path in its process's mount namespace. Methods
// are safe for concurrent use.
type foundSet struct {
	mu    sync.Mutex
	next  uint64
	files map[uint64]*foundEntry
}

type foundEntry struct {
	FoundFile
	f *os.File
}

// add registers the file open at path (a descriptor of discovery's,
// valid while Probe runs) and returns the release that forgets it, to be
// called before discovery's own release.
func (s *foundSet) add(path string, ff FoundFile) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("keeping %s open: %w", describe(ff.Name, ff.PID), err)
	}
	s.mu.Lock()
	s.next++
	ff.ID = s.next
	if s.files == nil {
		s.files = map[uint64]*foundEntry{}
	}
	s.files[ff.ID] = &foundEntry{FoundFile: ff, f: f}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.files, ff.ID)
			s.mu.Unlock()
			_ = f.Close()
		})
	}, nil
}

// list returns the files, by ID.
func (s *foundSet) list() []FoundFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FoundFile, 0, len(s.files))
	for _, e := range s.files {
		out = append(out, e.FoundFile)
	}
	slices.SortFunc(out, func(a, b FoundFile) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// dup returns a descriptor of its own on file id, and the file, or
// ErrFileReleased.
func (s *foundSet) dup(id uint64) (int, FoundFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.files[id]
	if e == nil {
		return -1, FoundFile{}, fmt.Errorf("file %d: %w", id, ErrFileReleased)
	}
	fd, err := unix.FcntlInt(e.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, e.FoundFile, fmt.Errorf("duplicating the descriptor of %s: %w", describe(e.Name, e.PID), err)
	}
	return fd, e.FoundFile, nil
}

// FoundFiles lists the files node-wide discovery probes now, oldest
// first; empty without discovery. Safe for concurrent use.
func (o *Object) FoundFiles() []FoundFile {
	if o.found == nil {
		return nil
	}
	return o.found.list()
}

// AttachFoundUprobes attaches probes, uprobes of the object's programs,
// to the file id of FoundFiles, as AttachUprobes does: every probe or
// none, an error is an *AttachError, and release must be called before
// the Module's Close returns. A file discovery released meanwhile gives
// an error wrapping ErrFileReleased; release may be called after
// discovery released the file (the links keep it until then).
func (o *Object) AttachFoundUprobes(id uint64, probes []Probe) (release func() error, err error) {
	if o.found == nil {
		return nil, fmt.Errorf("file %d: %w", id, ErrFileReleased)
	}
	for _, p := range probes {
		if !isUprobe(p.Section) {
			return nil, &AttachError{Program: p.Program, Section: p.Section, Symbol: p.Symbol, Binary: strconv.FormatUint(id, 10), Err: errors.New("not a uprobe")}
		}
	}
	fd, ff, err := o.found.dup(id)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return o.uprobes.attach("/proc/self/fd/"+strconv.Itoa(fd), ff.Name, ff.PID, probes)
}
