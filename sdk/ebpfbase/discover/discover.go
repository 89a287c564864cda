package discover

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// ErrSkip is returned by Config.Probe for a file that is not one to
// probe; the Watcher remembers it and never offers that file again.
var ErrSkip = errors.New("not a file to probe")

// Candidate is a file offered to Config.Probe.
type Candidate struct {
	// Path opens the file from this process while Probe runs (a
	// /proc/self/fd/N link to a descriptor the Watcher holds meanwhile).
	Path string
	// Name is the file's path as the process sees it.
	Name string
	// PID is the process found mapping or running it.
	PID uint32
	// Exe tells the process's executable from a library it maps.
	Exe bool
	// ExecNs is the bpf_ktime_get_ns of the exec, or of the dlopen, that
	// led to the file, 0 for files found by a scan of every process.
	ExecNs uint64
}

// Config says what a Watcher looks for and what it does with it.
type Config struct {
	// Library reports whether a mapped file whose base name is base may be
	// one to probe (e.g. libfind.Soname("libssl.so")); nil offers none.
	Library func(base string) bool
	// Executables offers every process's executable (OpenSSL linked
	// statically, Go programs...).
	Executables bool
	// Probe decides whether c is a file to probe (ErrSkip if not) and
	// attaches; release undoes it. It is called from one goroutine at a
	// time, never twice for one file (device and inode) while it is
	// probed.
	Probe func(c Candidate) (release func() error, err error)
	// Known are files probed already, by path: never offered.
	Known []string
	// MaxFiles caps the files probed at once; 0 means DefaultMaxFiles.
	MaxFiles int
	// CgroupID and CgroupLevel restrict the exec tracepoint to a cgroup
	// and its descendants (see cgroup.ID); 0: every exec.
	CgroupID    uint64
	CgroupLevel uint32
	// Logger receives one line per file probed, failed or released.
	Logger hclog.Logger
	// Proc is where procfs is mounted; "" means /proc.
	Proc string
}

// Defaults.
const (
	DefaultMaxFiles = 1024
	// GCInterval is how often files no process can reach are released.
	GCInterval = 10 * time.Second
	// maxSkipped bounds the memory of files found not to probe.
	maxSkipped = 1 << 16
)

// scanDelays are when, after an exec, the process's mappings are read:
// the executable and the loader at once, the libraries once the loader
// has mapped them (a millisecond or two), libraries opened early by
// dlopen later on.
var scanDelays = []time.Duration{0, time.Millisecond, 4 * time.Millisecond, 15 * time.Millisecond,
	50 * time.Millisecond, 150 * time.Millisecond, 450 * time.Millisecond}

// dlopenDelays are when, after the dynamic loader reported a change of a
// process's libraries (a dlopen at any time in its life: the uprobe on
// _dl_debug_state of kern/sdk/execwatch.c), its mappings are read: the
// change is complete when the loader reports it; the later reads cover
// the changes the kernel did not report, at most one per 10 ms and
// process.
var dlopenDelays = []time.Duration{0, 2 * time.Millisecond, 15 * time.Millisecond, 50 * time.Millisecond}

// isLoader reports whether base names a dynamic loader whose
// _dl_debug_state reports dlopen: ld-linux-x86-64.so.2 (glibc),
// ld-musl-x86_64.so.1 (musl), and their kin on other architectures.
func isLoader(base string) bool {
	return (strings.HasPrefix(base, "ld-linux") || strings.HasPrefix(base, "ld-musl")) && strings.Contains(base, ".so")
}

// Stats are a Watcher's counts since Start.
type Stats struct {
	Probed   int    // files probed now
	Released uint64 // files released: no process could reach them any more
	Failed   uint64 // files Probe failed on (attach errors, logged)
	Capped   uint64 // files not probed: MaxFiles were probed already
	Execs    uint64 // execs the tracepoint reported
	// Loaders is the number of dynamic loader files whose dlopen reports
	// are hooked now; Dlopens counts the reports.
	Loaders int
	Dlopens uint64
	// ExecsLost counts execs the kernel could not queue; each loss makes
	// the Watcher scan every process again.
	ExecsLost uint64
	// MaxLatency and LastLatency are the time from an exec to the end of
	// the Probe of a file it revealed.
	MaxLatency, LastLatency time.Duration
}

type fileKey struct{ dev, ino uint64 }

type file struct {
	name    string // as its process saw it
	pid     uint32 // last process known to reach it
	release func() error
}

// Watcher finds files to probe node-wide; see the package documentation.
// Stats and Close are safe for concurrent use.
type Watcher struct {
	cfg    Config
	proc   string
	execs  *execSource
	stop   chan struct{}
	done   chan struct{}
	logger hclog.Logger

	mu      sync.Mutex // guards the fields below
	probed  map[fileKey]*file
	skipped map[fileKey]struct{}
	loaders map[fileKey]*file // dynamic loaders hooked (Config.Library set)
	stats   Stats
	capLog  bool
}

// Start scans every process, offering the files it finds, then loads the
// exec tracepoint and keeps watching until Close. An error loading the
// tracepoint is returned with nothing left running (the files already
// probed are released).
func Start(cfg Config) (*Watcher, error) {
	if cfg.Probe == nil {
		return nil, errors.New("starting node-wide discovery: no Probe")
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	w := &Watcher{
		cfg: cfg, proc: cfg.Proc, logger: cfg.Logger,
		stop: make(chan struct{}), done: make(chan struct{}),
		probed: map[fileKey]*file{}, skipped: map[fileKey]struct{}{}, loaders: map[fileKey]*file{},
	}
	if w.proc == "" {
		w.proc = "/proc"
	}
	if w.logger == nil {
		w.logger = hclog.NewNullLogger()
	}
	for _, p := range cfg.Known {
		if k, ok := keyOf(p); ok {
			w.skipped[k] = struct{}{}
		}
	}
	// The tracepoint first: an exec between the scan and it would be
	// missed the other way round.
	execs, err := openExecSource(cfg.CgroupID, cfg.CgroupLevel)
	if err != nil {
		return nil, err
	}
	w.execs = execs
	w.scanAll()
	go w.run()
	return w, nil
}

// Stats returns the counts so far.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Probed = len(w.probed)
	st.Loaders = len(w.loaders)
	return st
}

// Close stops watching and releases every file probed.
func (w *Watcher) Close() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		w.execs.close()
		<-w.done
	}
	w.mu.Lock()
	files := make([]*file, 0, len(w.probed)+len(w.loaders))
	for _, f := range w.probed {
		files = append(files, f)
	}
	for _, f := range w.loaders {
		files = append(files, f)
	}
	clear(w.probed)
	clear(w.loaders)
	w.mu.Unlock()
	// Side by side: the kernel's detach of a probe waits for a grace
	// period, which concurrent detaches share (ebpfbase's uprobes.go has
	// the figures); closeWorkers bounds the threads blocked meanwhile.
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(closeWorkers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := files[i].release(); err != nil {
					errs[i] = fmt.Errorf("releasing the probes of %s: %w", files[i].name, err)
				}
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// closeWorkers is how many files Close releases at once.
const closeWorkers = 32

// pending is a process whose mappings are read again at
// start+delays[step].
type pending struct {
	pid    uint32
	execNs uint64
	start  time.Time
	step   int
	delays []time.Duration // scanDelays after an exec, dlopenDelays
}

func (w *Watcher) run() {
	defer close(w.done)
	recs := make(chan execRecord, 256)
	go w.execs.read(recs, w.stop)
	gc := time.NewTicker(GCInterval)
	defer gc.Stop()
	var queue []pending
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lost := uint64(0)
	for {
		// Scan what is due, then sleep until the next due time.
		now := time.Now()
		next := time.Hour
		kept := queue[:0]
		for _, p := range queue {
			due := p.start.Add(p.delays[p.step])
			if due.After(now) {
				next = min(next, due.Sub(now))
				kept = append(kept, p)
				continue
			}
			exe := p.step == 0 && len(p.delays) == len(scanDelays)
			if w.scanProcess(p.pid, p.execNs, exe) && p.step+1 < len(p.delays) {
				p.step++
				next = min(next, time.Until(p.start.Add(p.delays[p.step])))
				kept = append(kept, p)
			}
		}
		queue = kept
		timer.Reset(max(next, 0))
		select {
		case <-w.stop:
			return
		case r, ok := <-recs:
			if !ok {
				return
			}
			w.mu.Lock()
			if r.kind == kindDlopen {
				w.stats.Dlopens++
			} else {
				w.stats.Execs++
			}
			w.mu.Unlock()
			if r.kind == kindDlopen {
				// The process's reads after its exec, if still to
				// come, cover this one.
				if !slices.ContainsFunc(queue, func(p pending) bool { return p.pid == r.pid }) {
					queue = append(queue, pending{pid: r.pid, execNs: r.timestampNs, start: time.Now(), delays: dlopenDelays})
				}
				continue
			}
			queue = append(queue, pending{pid: r.pid, execNs: r.timestampNs, start: time.Now(), delays: scanDelays})
		case <-timer.C:
		case <-gc.C:
			if n := w.execs.lost(); n > lost {
				w.logger.Warn("execs were lost before discovery saw them: scanning every process again", "lost", n-lost)
				lost = n
				w.mu.Lock()
				w.stats.ExecsLost = n
				w.mu.Unlock()
				w.scanAll()
			}
			w.collect()
		}
	}
}

// scanAll offers the files of every process.
func (w *Watcher) scanAll() {
	for _, pid := range pids(w.proc) {
		w.scanProcess(pid, 0, true)
	}
}

// scanProcess offers the files process pid maps, and its executable when
// exe is set and Config.Executables. It reports whether the process is
// still there.
func (w *Watcher) scanProcess(pid uint32, execNs uint64, exe bool) bool {
	dir := filepath.Join(w.proc, strconv.FormatUint(uint64(pid), 10))
	if exe && w.cfg.Executables {
		name, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil {
			return false
		}
		w.offer(Candidate{Path: filepath.Join(dir, "exe"), Name: name, PID: pid, Exe: true, ExecNs: execNs})
	}
	if w.cfg.Library == nil {
		return true
	}
	data, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil {
		return false
	}
	for _, m := range mappedFiles(data, func(base string) bool { return isLoader(base) || w.cfg.Library(base) }) {
		// map_files opens the very file mapped, whatever the mount
		// namespace or root of the process.
		c := Candidate{Path: filepath.Join(dir, "map_files", m.addrs), Name: m.name, PID: pid, ExecNs: execNs}
		if isLoader(filepath.Base(m.name)) {
			w.hookLoader(c)
		} else {
			w.offer(c)
		}
	}
	return true
}

// hookLoader attaches the dlopen report to the dynamic loader c, unless
// its file is hooked already. Failures are logged once per file: its
// processes' late dlopens are then missed, nothing else.
func (w *Watcher) hookLoader(c Candidate) {
	k, ok := keyOf(c.Path)
	if !ok {
		return
	}
	w.mu.Lock()
	_, hooked := w.loaders[k]
	_, skipped := w.skipped[k]
	full := len(w.loaders) >= w.cfg.MaxFiles
	w.mu.Unlock()
	if hooked || skipped || full {
		return
	}
	l, err := w.execs.hookLoader(c.Path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.skipped[k] = struct{}{}
		w.logger.Warn("watching a dynamic loader for dlopen failed: libraries its processes open late are not seen",
			"path", c.Name, "pid", c.PID, "error", err)
		return
	}
	w.loaders[k] = &file{name: c.Name, pid: c.PID, release: l.Close}
	w.logger.Debug("watching a dynamic loader for dlopen", "path", c.Name, "pid", c.PID)
}

// offer hands c to Probe unless its file was seen before. The file is
// opened first and handed over as /proc/self/fd/N: a short-lived process
// may exit, and take its /proc entries, while its file is being probed.
func (w *Watcher) offer(c Candidate) {
	fd, err := unix.Open(c.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	k := fileKey{dev: st.Dev, ino: st.Ino}
	c.Path = "/proc/self/fd/" + strconv.Itoa(fd)
	w.mu.Lock()
	if f, ok := w.probed[k]; ok {
		f.pid = c.PID
		w.mu.Unlock()
		return
	}
	if _, ok := w.skipped[k]; ok {
		w.mu.Unlock()
		return
	}
	if len(w.probed) >= w.cfg.MaxFiles {
		w.stats.Capped++
		first := !w.capLog
		w.capLog = true
		w.mu.Unlock()
		if first {
			w.logger.Warn("node-wide discovery reached its cap of probed files: further files are not probed (counted in discovery_files_capped)",
				"max_files", w.cfg.MaxFiles, "path", c.Name, "pid", c.PID)
		}
		return
	}
	w.mu.Unlock()

	release, err := w.cfg.Probe(c)

	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case errors.Is(err, ErrSkip):
		if len(w.skipped) >= maxSkipped {
			clear(w.skipped)
		}
		w.skipped[k] = struct{}{}
	case err != nil:
		// Not offered again: the same error would follow.
		w.skipped[k] = struct{}{}
		w.stats.Failed++
		w.logger.Error("probing a file found node-wide failed", "path", c.Name, "pid", c.PID, "error", err)
	default:
		w.probed[k] = &file{name: c.Name, pid: c.PID, release: release}
		var lat time.Duration
		if c.ExecNs != 0 {
			lat = time.Duration(monotonicNs() - c.ExecNs)
			w.stats.LastLatency = lat
			w.stats.MaxLatency = max(w.stats.MaxLatency, lat)
		}
		w.logger.Info("probing a file found node-wide", "path", c.Name, "pid", c.PID, "executable", c.Exe, "since_exec", lat.Round(time.Microsecond).String())
	}
}

// collect releases the files no live process can reach: none maps or
// runs it, and no process's root holds it at its name.
func (w *Watcher) collect() {
	w.collectIn(w.probed, func() { w.stats.Released++ })
	w.collectIn(w.loaders, func() {})
}

// collectIn releases the files of set no live process can reach;
// released is called, w.mu held, for each.
func (w *Watcher) collectIn(set map[fileKey]*file, released func()) {
	w.mu.Lock()
	var check []fileKey
	for k := range set {
		check = append(check, k)
	}
	w.mu.Unlock()
	if len(check) == 0 {
		return
	}
	var roots []uint32 // a process per mount namespace
	rootsDone := false
	for _, k := range check {
		w.mu.Lock()
		f := set[k]
		w.mu.Unlock()
		if f == nil || w.reaches(f.pid, f.name, k) {
			continue
		}
		if !rootsDone {
			roots, rootsDone = mountNamespaces(w.proc), true
		}
		alive := false
		for _, pid := range roots {
			if w.reaches(pid, f.name, k) {
				alive = true
				w.mu.Lock()
				f.pid = pid
				w.mu.Unlock()
				break
			}
		}
		if alive {
			continue
		}
		w.mu.Lock()
		delete(set, k)
		released()
		w.mu.Unlock()
		if err := f.release(); err != nil {
			w.logger.Warn("releasing the probes of a file no process reaches", "path", f.name, "error", err)
		} else {
			w.logger.Info("released the probes of a file no process reaches any more", "path", f.name)
		}
	}
}

// reaches reports whether process pid sees the file k at name, or name
// is the file in this process's view (a process chrooted in a directory
// of this mount namespace: the kernel shows its paths from our root).
func (w *Watcher) reaches(pid uint32, name string, k fileKey) bool {
	if got, ok := keyOf(name); ok && got == k {
		return true
	}
	root := filepath.Join(w.proc, strconv.FormatUint(uint64(pid), 10), "root")
	got, ok := keyOf(root + name)
	return ok && got == k
}

// mapping is a file a process maps: its name, and the address range that
// names it in /proc/PID/map_files.
type mapping struct{ name, addrs string }

// mappedFiles returns the distinct files in the text of a /proc/PID/maps
// file whose base name match accepts, skipping deleted files: lines read
// "start-end perms offset dev inode path", and the path may hold spaces.
func mappedFiles(data []byte, match func(string) bool) []mapping {
	var out []mapping
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		slash := bytes.IndexByte(line, '/')
		sp := bytes.IndexByte(line, ' ')
		if slash < 0 || sp < 0 || sp > slash {
			continue
		}
		name := string(line[slash:])
		if strings.HasSuffix(name, " (deleted)") || !match(filepath.Base(name)) ||
			slices.ContainsFunc(out, func(m mapping) bool { return m.name == name }) {
			continue
		}
		out = append(out, mapping{name: name, addrs: string(line[:sp])})
	}
	return out
}

// keyOf returns the device and inode of the regular file path.
func keyOf(path string) (fileKey, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fileKey{}, false
	}
	return fileKey{dev: st.Dev, ino: st.Ino}, true
}

// pids lists the processes in proc.
func pids(proc string) []uint32 {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var out []uint32
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}

// mountNamespaces returns one process of each mount namespace.
func mountNamespaces(proc string) []uint32 {
	seen := map[string]bool{}
	var out []uint32
	for _, pid := range pids(proc) {
		ns, err := os.Readlink(filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		out = append(out, pid)
	}
	return out
}

// monotonicNs is CLOCK_MONOTONIC in ns, bpf_ktime_get_ns's clock.
func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
