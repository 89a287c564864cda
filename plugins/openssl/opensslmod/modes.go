package opensslmod

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/hashicorp/go-hclog"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/cgroup"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/keylog"
	"github.com/ecaphost/ecaphost/sdk/safefile"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Config attributes of the key modes.
const (
	AttrKeylogFile     = "keylog_file"
	AttrPcapFile       = "pcap_file"
	AttrIfname         = "ifname"
	AttrPort           = "port"
	AttrHost           = "host"
	AttrOpenSSLVersion = "openssl_version"
	AttrOffsets        = "offsets"
)

// Values of the mode attribute besides ModeText.
const (
	// ModeKeylog writes every TLS session's secrets to keylog_file.
	ModeKeylog = "keylog"
	// ModePcap captures ifname's packets into pcap_file, with the
	// sessions' secrets, so that Wireshark opens it decrypted.
	ModePcap = "pcap"
)

// keyAttributes are the schema's attributes of the key modes.
var keyAttributes = []sdk.Attribute{
	{
		Name: AttrKeylogFile, Type: sdk.TypeString, Default: "",
		Description: `Key log file (NSS format, created 0600, appended to): required in mode "keylog"; in mode "pcap", written besides the pcapng file when set.`,
	},
	{
		Name: AttrPcapFile, Type: sdk.TypeString, Default: "",
		Description: `pcapng file of mode "pcap": the packets of ifname with the TLS secrets as Decryption Secrets Blocks (created 0600; an existing file gets a new section appended, never truncated).`,
	},
	{
		Name: AttrIfname, Type: sdk.TypeString, Default: "",
		Description: `Interface whose packets mode "pcap" captures (TC ingress and egress; egress only on loopback, where both see every packet).`,
	},
	{
		Name: AttrPort, Type: sdk.TypeNumber, Default: int64(0),
		Description: `Mode "pcap": capture only TCP/UDP packets from or to this port (applied in the kernel); 0: every packet.`,
	},
	{
		Name: AttrHost, Type: sdk.TypeString, Default: "",
		Description: `Mode "pcap": capture only IP packets from or to this address (applied in the kernel); empty: every packet.`,
	},
	{
		Name: AttrOpenSSLVersion, Type: sdk.TypeString, Default: "",
		Description: `Key modes: read secrets with the layout of this OpenSSL release (e.g. "3.0.0") instead of the version found in the library; for builds whose version is unknown but whose layout is that release's.`,
	},
	{
		Name: AttrOffsets, Type: sdk.TypeStringList, Default: []string(nil),
		Description: `Key modes: structure offsets overriding the layout, as "name=offset" (e.g. "handshake_secret=0x584"); with an unknown version and no openssl_version, every offset must be given.`,
	},
}

// targetLayout is where one probed binary keeps its secrets.
type targetLayout struct {
	version detected
	row     string // the table row, or "offsets" for offsets given in full
	source  string
	layout  layout
	checked []string // accessors whose code confirmed the layout
}

// keyMode holds the settings and the running state of the key modes
// (keylog, pcap). Its decode runs on Run's goroutine.
type keyMode struct {
	keylogPath, pcapPath string
	iface                ifaceInfo
	filter               pcapFilter
	layouts              []targetLayout // by target index: the kernel's slot

	fallback *fallback // the probes keying sessions whose handshake was not seen

	tcx    bool            // attach the TC programs as tcx links, not ebpfmanager probes
	links  []link.Link     // the tcx links, guarded by mu
	probes []sdk.ProbeInfo // what they attach, for Probes; guarded by mu

	keys  keyLogger
	pcap  *pcapFile
	rec   keysRecord
	stamp ebpfbase.Stamper // decode's
	// cgroups names the container of a connection in packet comments;
	// nil without a cgroup2 hierarchy.
	cgroups *cgroup.Resolver

	mu                          sync.Mutex // the counters below
	unverified, unwritten, drop uint64
	early                       uint64
	sink                        sdk.Sink
	logger                      hclog.Logger
	lastWarn                    time.Time
}

// checkOutputPath checks that the file attr names can be written as
// safefile.Append writes it: a directory that exists, and no symbolic
// link, FIFO or file of another user at the name.
func checkOutputPath(attr, path string) (sdk.Diagnostic, bool) {
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err == nil {
			path = abs
		}
	}
	if err := safefile.Check(path); err != nil {
		summary := "Cannot write the file"
		if errors.Is(err, safefile.ErrUnsafe) {
			summary = "Unsafe file"
		}
		return sdk.Errorf(attr, summary, "%v", err), false
	}
	return sdk.Diagnostic{}, true
}

// initKeys checks the attributes of the key modes for mode and, in a key
// mode, finds the layout of each target. targets whose layout is unknown
// and that were found (not configured) are dropped with a warning;
// configured ones are refused. It returns the targets kept.
//
// configured maps the paths set in the config to their attribute: the
// refusal of such a path is reported on that attribute, where the user
// wrote it; that of a path found is reported on openssl_version.
func (k *keyMode) initKeys(mode string, cfg sdk.Config, pid uint32, targets []target, configured map[string]string, logger hclog.Logger) ([]target, sdk.Diagnostics) {
	var diags sdk.Diagnostics
	*k = keyMode{}
	keylogPath, pcapPath, ifname := cfg.String(AttrKeylogFile), cfg.String(AttrPcapFile), cfg.String(AttrIfname)
	port, host := cfg.Number(AttrPort), cfg.String(AttrHost)
	forced, offsets := cfg.String(AttrOpenSSLVersion), cfg.StringList(AttrOffsets)

	notIn := func(attr string, modes string) {
		diags = append(diags, sdk.Errorf(attr, "Attribute not used in this mode", "%q applies to mode %s, not %q", attr, modes, mode))
	}
	if mode == ModeText {
		for attr, set := range map[string]bool{AttrKeylogFile: keylogPath != "", AttrPcapFile: pcapPath != "", AttrIfname: ifname != "",
			AttrPort: port != 0, AttrHost: host != "", AttrOpenSSLVersion: forced != "", AttrOffsets: len(offsets) > 0} {
			if set {
				notIn(attr, `"keylog" or "pcap"`)
			}
		}
		sortDiags(diags)
		return targets, diags
	}
	if mode == ModeKeylog {
		for attr, set := range map[string]bool{AttrPcapFile: pcapPath != "", AttrIfname: ifname != "", AttrPort: port != 0, AttrHost: host != ""} {
			if set {
				notIn(attr, `"pcap"`)
			}
		}
		if keylogPath == "" {
			diags = append(diags, sdk.Errorf(AttrKeylogFile, "Missing key log file", `mode "keylog" needs %s, the file to write the secrets to`, AttrKeylogFile))
		}
	}
	if keylogPath != "" {
		if d, ok := checkOutputPath(AttrKeylogFile, keylogPath); !ok {
			diags = append(diags, d)
		}
	}
	if mode == ModePcap {
		if pcapPath == "" {
			diags = append(diags, sdk.Errorf(AttrPcapFile, "Missing pcapng file", `mode "pcap" needs %s, the pcapng file to write`, AttrPcapFile))
		} else if d, ok := checkOutputPath(AttrPcapFile, pcapPath); !ok {
			diags = append(diags, d)
		}
		if ifname == "" {
			diags = append(diags, sdk.Errorf(AttrIfname, "Missing interface", `mode "pcap" needs %s, the interface to capture (e.g. "eth0", "lo")`, AttrIfname))
		} else if ifc, err := lookupIface(ifname); err != nil {
			diags = append(diags, sdk.Errorf(AttrIfname, "Interface not usable", "%v", err))
		} else {
			k.iface = ifc
		}
		if port < 0 || port > 65535 {
			diags = append(diags, sdk.Errorf(AttrPort, "Invalid port", "%d is not a port (0 to 65535; 0: any)", port))
		}
		k.filter.port = uint16(port)
		if err := k.filter.parseHost(host); err != nil {
			diags = append(diags, sdk.Errorf(AttrHost, "Invalid address", "%v", err))
		}
	}
	k.keylogPath, k.pcapPath = keylogPath, pcapPath

	var forcedRow *layoutRow
	if forced != "" {
		v, err := parseVersion(forced)
		row, ok := lookupLayout(v)
		switch {
		case err != nil:
			diags = append(diags, sdk.Errorf(AttrOpenSSLVersion, "Invalid version", "%v", err))
		case !ok:
			diags = append(diags, sdk.Errorf(AttrOpenSSLVersion, "Unknown version", "OpenSSL %s is not in the layout table (%s)", forced, supportedVersions))
		default:
			forcedRow = &row
		}
	}
	var probe layout
	if _, err := applyOffsets(&probe, offsets); err != nil {
		diags = append(diags, sdk.Errorf(AttrOffsets, "Invalid offset", "%v", err))
	}
	if diags.HasErrors() {
		sortDiags(diags)
		return targets, diags
	}

	var kept []target
	var refused sdk.Diagnostics
	for _, t := range targets {
		tl, d, ok := resolveLayout(t.Path, pid, forcedRow, offsets)
		if !ok {
			if attr, ok := configured[t.Path]; ok {
				if d.Attribute == AttrOpenSSLVersion {
					d.Attribute = attr
				}
				diags = append(diags, d)
			} else {
				logger.Warn("not probing a libssl found: its layout is unknown", "path", t.Path, "problem", d.Detail)
				refused = append(refused, d)
			}
			continue
		}
		logger.Info("OpenSSL layout", "path", t.Path, "version", tl.version.text, "from", tl.version.from, "layout", tl.row, "source", tl.source,
			"accessors_checked", strings.Join(tl.checked, ","))
		kept = append(kept, t)
		k.layouts = append(k.layouts, tl)
	}
	if len(kept) == 0 && len(diags) == 0 && len(refused) > 0 {
		diags = append(diags, refused[0])
	}
	if len(kept) > maxLayouts {
		diags = append(diags, sdk.Errorf(AttrLibssl, "Too many binaries", "the key modes probe at most %d binaries at once, %d were found (%s): set %s or %s",
			maxLayouts, len(kept), strings.Join(tlsrecord.Paths(kept), ", "), AttrLibssl, AttrBinary))
	}
	return kept, diags
}

// sortDiags orders diagnostics by attribute, for stable messages (they
// come from map iteration).
func sortDiags(ds sdk.Diagnostics) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Attribute < ds[j-1].Attribute; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// overrideHint says how to override the layout.
func overrideHint() string {
	return fmt.Sprintf(`If this build has the layout of a supported release (%s), set %s = "3.0.0" (the release) in the config block; `+
		`otherwise give every offset: %s = ["handshake_secret=0x...", ...] with the names %s`,
		supportedVersions, AttrOpenSSLVersion, AttrOffsets, strings.Join(offsetNames(), ", "))
}

// resolveLayout finds the layout of the binary at path: the row of its
// version (or of forced), with offsets applied, confirmed by the code of
// its accessors where they are simple loads. An unknown version, a fork,
// or accessors contradicting the layout are refused: a wrong layout would
// write wrong keys.
func resolveLayout(path string, pid uint32, forced *layoutRow, offsets []string) (targetLayout, sdk.Diagnostic, bool) {
	var tl targetLayout
	d, err := detectVersion(path, pid)
	if err == nil {
		tl.version = d
	}
	switch {
	case forced != nil:
		tl.row, tl.source, tl.layout = forced.name+" (openssl_version)", forced.source, forced.layout
		if err != nil {
			tl.version = detected{text: "unknown", from: path}
		}
	case err != nil && len(offsets) == 0:
		return tl, sdk.Errorf(AttrOpenSSLVersion, "OpenSSL version unknown",
			"cannot tell which OpenSSL %s is, so where its secrets are: %v. Refusing to guess: keys read with a wrong layout would be wrong. %s", path, err, overrideHint()), false
	default:
		row, ok := layoutRow{}, false
		if err == nil && d.suffix == "" {
			if v, perr := parseVersion(d.number); perr == nil {
				row, ok = lookupLayout(v)
			}
		}
		switch {
		case ok:
			tl.row, tl.source, tl.layout = row.name, row.source, row.layout
		case len(offsets) > 0:
			tl.row, tl.source = "offsets", "the offsets attribute"
			tl.layout = unsetLayout()
			if err != nil {
				tl.version = detected{text: "unknown", from: path}
			}
		default:
			what := "is not a release whose layout is known"
			if d.suffix != "" {
				what = fmt.Sprintf("is a fork or vendor build (%q after the version) whose layout is not known", d.suffix)
			}
			return tl, sdk.Errorf(AttrOpenSSLVersion, "Unsupported OpenSSL version",
				"%s is %q (read from %s), which %s (supported: %s). Refusing to read its secrets: keys read with a wrong layout would be wrong. %s",
				path, d.text, d.from, what, supportedVersions, overrideHint()), false
		}
	}
	set, err := applyOffsets(&tl.layout, offsets)
	if err != nil {
		return tl, sdk.Errorf(AttrOffsets, "Invalid offset", "%v", err), false
	}
	if len(set) > 0 && tl.row != "offsets" {
		tl.row += " with offsets"
	}
	if err := checkLayout(tl.layout); err != nil {
		return tl, sdk.Errorf(AttrOffsets, "Incomplete offsets", "%s: the version of %s is %s: %v", path, path, tl.version.text, err), false
	}
	checked, err := checkAccessors(path, tl.layout)
	if err != nil {
		return tl, sdk.Errorf(AttrOpenSSLVersion, "OpenSSL layout mismatch",
			"%s is %q, layout %s, but %v. Refusing to read its secrets. %s", path, tl.version.text, tl.row, err, overrideHint()), false
	}
	tl.checked = checked
	return tl, sdk.Diagnostic{}, true
}

// layoutsConstant is the value of openssl_layouts.
func (k *keyMode) layoutsConstant() [maxLayouts]layout {
	var out [maxLayouts]layout
	copy(out[:], func() []layout {
		ls := make([]layout, len(k.layouts))
		for i, l := range k.layouts {
			ls[i] = l.layout
		}
		return ls
	}())
	return out
}

// constants returns the const volatile globals of the key modes.
func (k *keyMode) constants(mode string) map[string]any {
	c := map[string]any{
		"openssl_capture_keys": uint32(1),
		"openssl_layouts":      k.layoutsConstant(),
	}
	if mode == ModePcap {
		for name, v := range k.filter.constants(k.iface) {
			c[name] = v
		}
	}
	return c
}

// slotSuffix is the suffix of the entry programs of layout slot i.
func slotSuffix(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("_%d", i)
}

// haveTCX is tcxSupported; tests replace it.
var haveTCX = tcxSupported

// tcxSupported tells whether the kernel attaches TC programs as links
// (tcx, Linux 6.6+): detaching one then removes that program only. It
// tries a link to an interface that does not exist, as cilium/ebpf's own
// feature test does: "no such device" means tcx is there.
func tcxSupported() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return false
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: prog, Attach: ebpf.AttachTCXEgress})
	if err == nil {
		l.Close()
		return true
	}
	return !errors.Is(err, ebpf.ErrNotSupported)
}

// tcHooks are the TC hooks of pcap mode on the interface: egress only on
// a loopback interface, where a packet crosses egress and then ingress of
// the same interface.
func (k *keyMode) tcHooks() []struct {
	program string
	attach  ebpf.AttachType
	name    string
} {
	hooks := []struct {
		program string
		attach  ebpf.AttachType
		name    string
	}{{progEgress, ebpf.AttachTCXEgress, "egress"}}
	if !k.iface.loopback {
		hooks = append(hooks, struct {
			program string
			attach  ebpf.AttachType
			name    string
		}{progIngress, ebpf.AttachTCXIngress, "ingress"})
	}
	return hooks
}

// attachTCX attaches the TC programs of pcap mode as tcx links, once the
// object is loaded.
func (k *keyMode) attachTCX(obj *ebpfbase.Object) error {
	for _, h := range k.tcHooks() {
		prog, err := obj.Program(h.program)
		if err != nil {
			return fmt.Errorf("attaching tc %s to %s: %w", h.name, k.iface.name, err)
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: k.iface.index, Program: prog, Attach: h.attach})
		if err != nil {
			k.detachTCX()
			return fmt.Errorf("attaching tc %s (tcx) to interface %s: %w", h.name, k.iface.name, err)
		}
		k.mu.Lock()
		k.links = append(k.links, l)
		k.probes = append(k.probes, sdk.ProbeInfo{Program: h.program, Kind: "tcx", Target: h.name + " " + k.iface.name})
		k.mu.Unlock()
	}
	return nil
}

// detachTCX closes the tcx links.
func (k *keyMode) detachTCX() {
	k.mu.Lock()
	links := k.links
	k.links, k.probes = nil, nil
	k.mu.Unlock()
	for _, l := range links {
		_ = l.Close()
	}
}

// tcxProbes describes the tcx links attached.
func (k *keyMode) tcxProbes() []sdk.ProbeInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sdk.ProbeInfo(nil), k.probes...)
}

// tcProbes are the TC hooks as ebpfmanager probes, on kernels without
// tcx: a clsact qdisc and a filter per direction. ebpfmanager removes the
// qdisc when it stops, with any other filter on it.
func (k *keyMode) tcProbes() []ebpfbase.Probe {
	probes := []ebpfbase.Probe{{
		ID: "pcap" + k.iface.name, Section: "classifier/egress", Program: progEgress,
		Interface: k.iface.name,
	}}
	if !k.iface.loopback {
		probes = append(probes, ebpfbase.Probe{
			ID: "pcap" + k.iface.name, Section: "classifier/ingress", Program: progIngress,
			Interface: k.iface.name, Ingress: true,
		})
	}
	return probes
}

// counters are the kernel counters of the key modes.
func (k *keyMode) counters(mode string) []ebpfbase.CounterMap {
	out := []ebpfbase.CounterMap{
		{Name: CounterKeysUnsupported, Map: opensslStatsMap, Index: statKeysUnsupported},
		{Name: CounterKeysUnreadable, Map: opensslStatsMap, Index: statKeysFault},
		{Name: CounterKeysLate, Map: opensslStatsMap, Index: statKeysLate},
		{Name: CounterKeysAtFree, Map: opensslStatsMap, Index: statKeysAtFree},
	}
	if mode == ModePcap {
		out = append(out,
			ebpfbase.CounterMap{Name: CounterPcapLost, Map: opensslStatsMap, Index: statPcapFailed},
			ebpfbase.CounterMap{Name: CounterPcapTruncated, Map: opensslStatsMap, Index: statPcapTruncated})
	}
	return out
}

// startFallback attaches the fallback probes for the window after start
// and starts the loop that attaches them while a session needs them.
func (k *keyMode) startFallback(obj *ebpfbase.Object, targets []target, logger hclog.Logger) error {
	f, err := newFallback(obj, targets, logger.Named("fallback"))
	if err != nil {
		return err
	}
	if err := f.start(); err != nil {
		f.close()
		return err
	}
	k.fallback = f
	return nil
}

// endFallback detaches the fallback probes for good. It may be called
// more than once.
func (k *keyMode) endFallback() {
	k.fallback.end()
}

// closeFallback ends the fallback and closes its map handles.
func (k *keyMode) closeFallback() {
	k.fallback.close()
}

// open creates the output files; Start calls it before loading.
func (k *keyMode) open(mode string, sink sdk.Sink, logger hclog.Logger) error {
	k.sink, k.logger = sink, logger
	if k.keylogPath != "" {
		w, err := keylog.Create(k.keylogPath)
		if err != nil {
			return err
		}
		k.keys.file = w
	}
	if mode == ModePcap {
		p, err := openPcap(k.pcapPath, k.iface, logger)
		if err != nil {
			k.close()
			return err
		}
		k.pcap = p
		k.keys.pcap = p
		if mount, err := cgroup.Mount("/proc/mounts"); err == nil {
			k.cgroups = cgroup.NewResolver(mount)
		}
	}
	return nil
}

// start begins the periodic work once loaded: the pcapng writer's ticks.
func (k *keyMode) start() {
	k.report()
	if k.pcap != nil {
		k.pcap.tick(200*time.Millisecond, func(err error) {
			k.warn("writing the pcapng file failed", err)
		}, func(early uint64) {
			k.mu.Lock()
			k.early = early
			k.mu.Unlock()
			k.report()
		})
	}
}

// report sends the user-space counters of the key modes to the sink.
func (k *keyMode) report() {
	if k.sink == nil {
		return
	}
	k.mu.Lock()
	unverified, unwritten, drop, early := k.unverified, k.unwritten, k.drop, k.early
	pcap := k.pcapPath != ""
	k.mu.Unlock()
	k.sink.SetCounter(CounterKeysUnverified, unverified)
	k.sink.SetCounter(CounterKeysUnwritten, unwritten)
	attachments, attached := k.fallback.usage()
	k.sink.SetCounter(CounterFallbackAttached, attachments)
	k.sink.SetCounter(CounterFallbackMillis, uint64(attached.Milliseconds()))
	if pcap {
		k.sink.SetCounter(CounterPcapUnwritten, drop)
		k.sink.SetCounter(CounterPcapEarly, early)
	}
}

// warn logs a problem at most every few seconds.
func (k *keyMode) warn(msg string, err error, args ...any) {
	k.mu.Lock()
	now := time.Now()
	quiet := now.Sub(k.lastWarn) < 5*time.Second
	if !quiet {
		k.lastWarn = now
	}
	k.mu.Unlock()
	if !quiet && k.logger != nil {
		k.logger.Warn(msg, append([]any{"error", err}, args...)...)
	}
}

// finish reports the counters; Run calls it when it ends, before the
// final batch.
func (k *keyMode) finish() {
	if k.pcap != nil {
		k.mu.Lock()
		k.early = k.pcap.w.Stats().EarlyPackets
		k.mu.Unlock()
	}
	k.report()
}

// close writes what is held and closes the files. It may be called more
// than once.
func (k *keyMode) close() error {
	var errs []error
	if k.cgroups != nil {
		_ = k.cgroups.Close()
		k.cgroups = nil
	}
	if k.pcap != nil {
		k.finish()
		if err := k.pcap.close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the pcapng file %s: %w", k.pcapPath, err))
		}
		k.pcap, k.keys.pcap = nil, nil
	}
	if k.keys.file != nil {
		if err := k.keys.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the key log file %s: %w", k.keylogPath, err))
		}
		k.keys.file = nil
	}
	k.report()
	return errors.Join(errs...)
}

// writePacket writes one packet to the pcapng file, or queues it until
// its connection's keys are written.
func (k *keyMode) writePacket(m pcapMeta, data []byte) {
	if err := k.pcap.w.WritePacket(ebpfbase.KtimeToTime(m.TimestampNs), data, int(m.Len), ""); err != nil {
		k.mu.Lock()
		k.drop++
		k.mu.Unlock()
		k.warn("writing a packet to the pcapng file failed", err, "file", k.pcapPath)
	}
}

// kindPacket is the Kind of the events Decode returns for packets, routed
// to the module, which drops them: a packet is written to the pcapng file
// by Decode, it is not an event.
const kindPacket = "packet"

// decode handles one record of the key modes: a packet of pcap_events is
// written to the pcapng file (ev becomes a RouteModule event the
// Dispatch drops); a keys record of ecap_events is checked, logged once
// per session, and becomes a tls_keys event.
func (k *keyMode) decode(mapName string, raw []byte, ev *sdk.Event) error {
	if mapName == pcapEventsMap {
		meta, data, err := decodePacket(raw)
		if err != nil {
			return err
		}
		ev.Kind, ev.Route = kindPacket, sdk.RouteModule
		if k.pcap != nil {
			k.writePacket(meta, data)
		}
		return nil
	}
	r := &k.rec
	if err := decodeKeys(raw, r); err != nil {
		return err
	}
	layoutName := ""
	if int(r.Layout) < len(k.layouts) {
		layoutName = k.layouts[r.Layout].row
	}
	var o keysOutcome
	s, err := sessionFromKeys(r)
	switch {
	case err != nil:
		o.problem = err
		if errors.Is(err, errKeysUnverified) {
			k.mu.Lock()
			k.unverified++
			k.mu.Unlock()
			k.warn("not logging the secrets of a session: they failed the check; is the layout right?", err,
				"layout", layoutName, "pid", r.Hdr.PID)
		}
	default:
		o.logged, err = k.keys.log(s)
		if err != nil {
			o.problem = err
			k.mu.Lock()
			k.unwritten++
			k.mu.Unlock()
			k.warn("writing the secrets of a session failed", err)
		}
	}
	if k.pcap != nil {
		if local, remote := connOf(r); local.IsValid() {
			var cg *cgroup.Identity
			if k.cgroups != nil && r.Hdr.CgroupID != 0 {
				cg = k.cgroups.Lookup(r.Hdr.CgroupID)
			}
			// o.problem is nil once the keys are written, now or by an
			// earlier record of the session.
			if err := k.pcap.connected(local, remote, procComment(r.Hdr.PID, k.stamp.Comm(r.Hdr.Comm[:]), cg), o.problem == nil); err != nil {
				k.warn("writing the packets of a connection to the pcapng file failed", err, "file", k.pcapPath)
			}
		}
	}
	if o.problem != nil {
		k.report()
	}
	fillKeysEvent(&k.stamp, r, layoutName, o, ev)
	return nil
}
