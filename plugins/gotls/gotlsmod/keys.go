package gotlsmod

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/keylog"
)

// Key records (struct gotls_key_event of kern/gotls_kern.c).
const (
	kindKey      = 2 // GOTLS_KIND_KEY
	keyLabelMax  = 32
	keyRandomLen = 32
	keySecretMax = 64
)

// Event kinds and fields of keylog mode.
const (
	// KindTLSKeys is the event of a session whose secrets were all read:
	// fields lib, version, client_random, logged and problem; never a
	// secret (outputs are logs kept with less care than the key file).
	KindTLSKeys = "tls_keys"
	// kindKeyPart is a record that completed no session; Dispatcher drops it.
	kindKeyPart       = "tls_key_part"
	FieldVersion      = "version"
	FieldClientRandom = "client_random"
	FieldLogged       = "logged"
	FieldProblem      = "problem"
)

// Counters of keylog mode kept in user space.
const (
	// CounterKeysUnverified counts sessions whose secrets failed the
	// checks (label unknown, lengths that disagree): not written.
	CounterKeysUnverified = "tls_keys_unverified"
	// CounterKeysIncomplete counts TLS 1.3 sessions of which some of the
	// four secrets never came (a handshake that failed half way, or more
	// than 4096 sessions waiting): their lines were not written.
	CounterKeysIncomplete = "tls_keys_incomplete"
	// CounterKeysUnwritten counts sessions whose lines could not be
	// written to the key log file.
	CounterKeysUnwritten = "tls_keys_unwritten"
)

// keyRecord is the Go twin of struct gotls_key_event.
type keyRecord struct {
	Hdr       ebpfbase.Header
	Config    uint64
	LabelLen  uint32
	RandomLen uint32
	SecretLen uint32
	Reserved  uint32
	Label     [keyLabelMax]byte
	Random    [keyRandomLen]byte
	Secret    [keySecretMax]byte
}

// keyRecordSize is the size of struct gotls_key_event.
const keyRecordSize = ebpfbase.HeaderSize + 8 + 16 + keyLabelMax + keyRandomLen + keySecretMax

// decodeKey decodes raw into r. It never panics.
func decodeKey(raw []byte, r *keyRecord) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return fmt.Errorf("decoding gotls key record: %w", err)
	}
	if len(raw) < keyRecordSize {
		return fmt.Errorf("decoding gotls key record: %d bytes, want %d: %w", len(raw), keyRecordSize, ebpfbase.ErrShortRecord)
	}
	bo := binary.NativeEndian
	r.Hdr = h
	o := ebpfbase.HeaderSize
	r.Config = bo.Uint64(raw[o:])
	r.LabelLen, r.RandomLen, r.SecretLen = bo.Uint32(raw[o+8:]), bo.Uint32(raw[o+12:]), bo.Uint32(raw[o+16:])
	o += 24
	o += copy(r.Label[:], raw[o:])
	o += copy(r.Random[:], raw[o:])
	copy(r.Secret[:], raw[o:])
	if r.LabelLen == 0 || r.LabelLen > keyLabelMax || r.RandomLen != keyRandomLen || r.SecretLen == 0 || r.SecretLen > keySecretMax {
		return fmt.Errorf("decoding gotls key record: label %d, client random %d, secret %d bytes: %w", r.LabelLen, r.RandomLen, r.SecretLen, ErrBadRecord)
	}
	return nil
}

// The labels crypto/tls gives writeKeyLog, and the TLS 1.3 secret each is.
const (
	labelTLS12 = "CLIENT_RANDOM"
	labelCHTS  = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	labelSHTS  = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	labelCTS   = "CLIENT_TRAFFIC_SECRET_0"
	labelSTS   = "SERVER_TRAFFIC_SECRET_0"
	allTLS13   = 1<<4 - 1
)

// tls13Bit is the bit of each TLS 1.3 label in pendingSession.have.
var tls13Bit = map[string]uint8{labelCHTS: 1, labelSHTS: 2, labelCTS: 4, labelSTS: 8}

// pendingSession is a TLS 1.3 session whose four secrets are not all in.
type pendingSession struct {
	s    keylog.Session
	have uint8
}

// maxPending bounds the TLS 1.3 sessions waiting for their secrets.
const maxPending = 4096

// keyCollector gathers the key log lines of sessions and writes each
// session once it is complete and checked. Used by the goroutine running
// Decode only, and by Close after Run returned.
type keyCollector struct {
	path    string
	file    *keylog.Writer
	pending map[[32]byte]*pendingSession
	order   [][32]byte // insertion order of pending, to drop the oldest
	rec     keyRecord

	unverified, incomplete, unwritten uint64
}

func (k *keyCollector) open() error {
	w, err := keylog.Create(k.path)
	if err != nil {
		return err
	}
	k.file = w
	return nil
}

func (k *keyCollector) close() error {
	if k.file == nil {
		return nil
	}
	err := k.file.Close()
	k.file = nil
	return err
}

// finish counts the sessions still waiting as incomplete, a last time.
func (k *keyCollector) finish(sink sdk.Sink) {
	if k.file == nil {
		return
	}
	k.incomplete += uint64(len(k.pending))
	clear(k.pending)
	k.order = nil
	k.publish(sink)
}

func (k *keyCollector) publish(sink sdk.Sink) {
	if sink == nil {
		return
	}
	sink.SetCounter(CounterKeysUnverified, k.unverified)
	sink.SetCounter(CounterKeysIncomplete, k.incomplete)
	sink.SetCounter(CounterKeysUnwritten, k.unwritten)
}

// decode collects the key record raw. When it completes a session, the
// session is checked and written, and ev becomes its tls_keys event;
// otherwise ev is a kindKeyPart event for Dispatcher to drop.
func (k *keyCollector) decode(hf *ebpfbase.Stamper, sink sdk.Sink, raw []byte, ev *sdk.Event) error {
	r := &k.rec
	if err := decodeKey(raw, r); err != nil {
		return err
	}
	label := string(r.Label[:r.LabelLen])
	secret := r.Secret[:r.SecretLen]
	var done *keylog.Session
	var problem error
	switch bit, ok := tls13Bit[label]; {
	case label == labelTLS12:
		done = &keylog.Session{ClientRandom: r.Random, Version: keylog.VersionTLS12, MasterSecret: append([]byte(nil), secret...)}
		if len(secret) != 48 {
			problem = fmt.Errorf("TLS 1.2 master secret of %d bytes, not 48", len(secret))
		}
	case ok:
		p := k.pending[r.Random]
		if p == nil {
			k.dropOldest()
			p = &pendingSession{s: keylog.Session{ClientRandom: r.Random, Version: keylog.VersionTLS13}}
			if k.pending == nil {
				k.pending = map[[32]byte]*pendingSession{}
			}
			k.pending[r.Random] = p
			k.order = append(k.order, r.Random)
		}
		v := append([]byte(nil), secret...)
		switch label {
		case labelCHTS:
			p.s.ClientHandshakeTrafficSecret = v
		case labelSHTS:
			p.s.ServerHandshakeTrafficSecret = v
		case labelCTS:
			p.s.ClientTrafficSecret0 = v
		case labelSTS:
			p.s.ServerTrafficSecret0 = v
		}
		p.have |= bit
		if p.have == allTLS13 {
			delete(k.pending, r.Random)
			done = &p.s
			problem = checkTLS13(&p.s)
		}
	default:
		k.unverified++
		problem = fmt.Errorf("unknown key log label %q", label)
		fillKeysEvent(hf, r, "", false, problem, ev)
		return nil
	}
	if done == nil {
		ev.Kind, ev.Route = kindKeyPart, sdk.RouteModule
		return nil
	}
	logged := false
	if problem != nil {
		k.unverified++
	} else if k.file != nil {
		var err error
		if logged, err = k.file.Write(done); err != nil {
			k.unwritten++
			problem = err
		}
	}
	fillKeysEvent(hf, r, versionName(done.Version), logged, problem, ev)
	k.publish(sink)
	return nil
}

// checkTLS13 checks a TLS 1.3 session's four secrets: each as long as the
// hash of a TLS 1.3 cipher suite (SHA-256 or SHA-384), all the same length.
func checkTLS13(s *keylog.Session) error {
	n := len(s.ClientHandshakeTrafficSecret)
	if n != 32 && n != 48 {
		return fmt.Errorf("TLS 1.3 secret of %d bytes, neither SHA-256's 32 nor SHA-384's 48", n)
	}
	for _, v := range [][]byte{s.ServerHandshakeTrafficSecret, s.ClientTrafficSecret0, s.ServerTrafficSecret0} {
		if len(v) != n {
			return fmt.Errorf("TLS 1.3 secrets of %d and %d bytes in one session", n, len(v))
		}
	}
	return nil
}

// dropOldest makes room for one more pending session.
func (k *keyCollector) dropOldest() {
	for len(k.pending) >= maxPending && len(k.order) > 0 {
		if _, ok := k.pending[k.order[0]]; ok {
			delete(k.pending, k.order[0])
			k.incomplete++
		}
		k.order = k.order[1:]
	}
	if len(k.order) > 2*maxPending {
		// Completed sessions leave their entries in order: compact it.
		kept := k.order[:0]
		for _, cr := range k.order {
			if _, ok := k.pending[cr]; ok {
				kept = append(kept, cr)
			}
		}
		k.order = kept
	}
}

func versionName(v uint16) string {
	if v == keylog.VersionTLS13 {
		return "TLS 1.3"
	}
	return "TLS 1.2"
}

// fillKeysEvent fills ev, the tls_keys event of record r.
func fillKeysEvent(hf *ebpfbase.Stamper, r *keyRecord, version string, logged bool, problem error, ev *sdk.Event) {
	if hf != nil {
		hf.FillEvent(&r.Hdr, ev)
	}
	ev.Kind = KindTLSKeys
	ev.Route = sdk.RouteOutput
	ev.Payload = ev.Payload[:0]
	ev.AddField(FieldLib, LibGo)
	if version != "" {
		ev.AddField(FieldVersion, version)
	}
	ev.AddField(FieldClientRandom, hex.EncodeToString(r.Random[:]))
	ev.AddField(FieldLogged, strconv.FormatBool(logged))
	if problem != nil {
		ev.AddField(FieldProblem, problem.Error())
	}
}
