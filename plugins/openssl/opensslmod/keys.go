package opensslmod

import (
	"crypto"
	"crypto/hmac"
	_ "crypto/sha256" // SHA-256 for TLS 1.3 suites
	_ "crypto/sha512" // SHA-384 for TLS 1.3 suites
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"unsafe"

	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/ebpfbase"
	"github.com/ecaphost/ecaphost/sdk/keylog"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Kind and fields of the events the key modes emit, one per handshake a
// probed process completed (sdk.RouteOutput). They never carry a secret:
// outputs are logs that may be kept or shipped with less care than the
// key file, which is created 0600.
const (
	// KindTLSKeys is the Kind of the event of a completed handshake.
	KindTLSKeys = "tls_keys"
	// FieldVersion is the TLS version: "TLS 1.3", "TLS 1.2"...
	FieldVersion = "version"
	// FieldClientRandom is the session's client_random, in hex: the key
	// the key log's lines are indexed by.
	FieldClientRandom = "client_random"
	// FieldCipher is the cipher suite's number, e.g. "0x1302".
	FieldCipher = "cipher"
	// FieldLogged is "true" when this event's secrets were written (to the
	// key file, or to the pcapng file), "false" when the session was
	// logged already (both ends of a connection are probed) or its
	// secrets could not be checked (see FieldProblem).
	FieldLogged = "logged"
	// FieldProblem says why secrets were not logged.
	FieldProblem = "problem"
	// FieldLayout is the OpenSSL layout the secrets were read with.
	FieldLayout = "layout"
)

// Loss counters of the key modes.
const (
	// CounterKeysUnsupported counts sessions whose SSL * was not a TLS
	// connection (a QUIC object, 3.2+): not logged.
	CounterKeysUnsupported = "tls_keys_unsupported"
	// CounterKeysUnreadable counts sessions whose secrets the kernel could
	// not read from the process.
	CounterKeysUnreadable = "tls_keys_unreadable"
	// CounterKeysUnverified counts sessions whose secrets were read but
	// failed the checks (wrong layout, or a state OpenSSL did not expect):
	// not logged, never a wrong key in the file.
	CounterKeysUnverified = "tls_keys_unverified"
	// CounterKeysUnwritten counts sessions whose lines could not be
	// written (file system full...).
	CounterKeysUnwritten = "tls_keys_unwritten"
)

// Values of kern/openssl_kern.c.
const (
	kindKeys        = 2 // OPENSSL_KIND_KEYS
	opensslStatsMap = "openssl_stats"

	statKeysUnsupported = 0
	statKeysFault       = 1
	statPcapFailed      = 2
	statPcapTruncated   = 3

	// Bit 1, OPENSSL_KEYS_F_NO_CIPHER, needs nothing here: CipherID is
	// still read.
	keysFlagNoSession = 1 << 0
	keysFlagFault     = 1 << 2

	secretLen    = 64
	masterKeyLen = 48
)

// keysRecord is the Go twin of struct openssl_keys_event; its layout is
// checked against the object's BTF.
type keysRecord struct {
	Hdr                    ebpfbase.Header
	Session                uint64
	Serial                 uint64
	Version                int32
	Layout                 uint32
	MasterKeyLength        uint64
	CipherID               uint32
	Algorithm2             uint32
	Fd                     int32
	Family                 uint16
	Lport                  uint16
	Rport                  uint16
	Reserved               uint16
	Reserved2              uint32
	Laddr                  [16]byte
	Raddr                  [16]byte
	ClientRandom           [32]byte
	MasterKey              [masterKeyLen]byte
	HandshakeSecret        [secretLen]byte
	HandshakeTrafficHash   [secretLen]byte
	ClientFinishedSecret   [secretLen]byte
	ServerFinishedHash     [secretLen]byte
	ClientAppTrafficSecret [secretLen]byte
	ServerAppTrafficSecret [secretLen]byte
	ExporterMasterSecret   [secretLen]byte
}

// keysRecordSize is sizeof(struct openssl_keys_event).
const keysRecordSize = int(unsafe.Sizeof(keysRecord{}))

// errBadKeys is wrapped for a keys record that is not one.
var errBadKeys = errors.New("bad keys record")

// decodeKeys decodes raw, one struct openssl_keys_event, into r. It never
// panics.
func decodeKeys(raw []byte, r *keysRecord) error {
	h, err := ebpfbase.DecodeHeader(raw)
	if err != nil {
		return fmt.Errorf("decoding openssl keys record: %w", err)
	}
	if h.Kind != kindKeys {
		return fmt.Errorf("decoding openssl keys record: kind %d: %w", h.Kind, errBadKeys)
	}
	if len(raw) < keysRecordSize {
		return fmt.Errorf("decoding openssl keys record: %d bytes, want %d: %w", len(raw), keysRecordSize, ebpfbase.ErrShortRecord)
	}
	if _, err := binary.Decode(raw[:keysRecordSize], binary.NativeEndian, r); err != nil {
		return fmt.Errorf("decoding openssl keys record: %w", err)
	}
	return nil
}

// Errors of sessionFromKeys: the record's secrets are not logged.
var (
	errKeysUnverified = errors.New("secrets failed the check")
	errKeysIncomplete = errors.New("secrets incomplete")
)

// hashOf returns the hash of a TLS 1.3 suite: from the low byte of
// algorithm2 (OpenSSL's handshake digest index: 4 SHA-256, 5 SHA-384) when
// the cipher was read, else from the suite's number.
func hashOf(algorithm2, cipherID uint32) (crypto.Hash, error) {
	if algorithm2 != 0 {
		switch algorithm2 & 0xff {
		case 4:
			return crypto.SHA256, nil
		case 5:
			return crypto.SHA384, nil
		}
		return 0, fmt.Errorf("cipher %#x: handshake digest index %d is neither SHA-256 (4) nor SHA-384 (5): %w", cipherID, algorithm2&0xff, errKeysUnverified)
	}
	switch cipherID {
	case 0x03001301, 0x03001303, 0x03001304, 0x03001305, 0x0300c0b4:
		return crypto.SHA256, nil
	case 0x03001302, 0x0300c0b5:
		return crypto.SHA384, nil
	}
	return 0, fmt.Errorf("cipher %#x is not a TLS 1.3 suite: %w", cipherID, errKeysUnverified)
}

// sessionFromKeys turns a keys record into the key log lines of its
// session. TLS 1.3 secrets are checked before anything is logged: the
// handshake traffic secrets, derived from handshake_secret and
// handshake_traffic_hash, must give the client finished key OpenSSL
// stored; the application traffic secrets and the exporter secret are
// derived from the master secret (itself derived from handshake_secret)
// and server_finished_hash, which must give the client application secret
// or the exporter secret OpenSSL stored. So a wrong layout, or secrets read
// at the wrong time, give an error, never lines. The derived application
// secrets are those of generation 0 even when a KeyUpdate already
// replaced the ones OpenSSL keeps.
func sessionFromKeys(r *keysRecord) (*keylog.Session, error) {
	s := &keylog.Session{ClientRandom: r.ClientRandom, Version: uint16(r.Version)}
	if r.ClientRandom == [32]byte{} {
		return nil, fmt.Errorf("client_random is zero: %w", errKeysIncomplete)
	}
	if r.Hdr.Flags&keysFlagFault != 0 {
		return nil, fmt.Errorf("the kernel could not read every secret: %w", errKeysIncomplete)
	}
	if r.Version != keylog.VersionTLS13 {
		if r.Hdr.Flags&keysFlagNoSession != 0 {
			return nil, fmt.Errorf("no session: %w", errKeysIncomplete)
		}
		if r.MasterKeyLength != masterKeyLen {
			return nil, fmt.Errorf("master key length %d, want %d: %w", r.MasterKeyLength, masterKeyLen, errKeysUnverified)
		}
		if r.MasterKey == [masterKeyLen]byte{} {
			return nil, fmt.Errorf("master key is zero: %w", errKeysUnverified)
		}
		s.MasterSecret = r.MasterKey[:]
		return s, nil
	}
	if r.Hdr.Flags&keysFlagNoSession != 0 {
		return nil, fmt.Errorf("no session, so no cipher: %w", errKeysIncomplete)
	}
	h, err := hashOf(r.Algorithm2, r.CipherID)
	if err != nil {
		return nil, err
	}
	n := h.Size()
	hs := r.HandshakeSecret[:n]
	chts, shts := keylog.HandshakeTrafficSecrets(h, hs, r.HandshakeTrafficHash[:n])
	if fk := keylog.ExpandLabel(h, chts, "finished", nil, n); !hmac.Equal(fk, r.ClientFinishedSecret[:n]) {
		return nil, fmt.Errorf("the client finished key derived from handshake_secret and handshake_traffic_hash is not OpenSSL's: %w", errKeysUnverified)
	}
	master := masterSecret(h, hs)
	sfh := r.ServerFinishedHash[:n]
	cats := keylog.ExpandLabel(h, master, "c ap traffic", sfh, n)
	sats := keylog.ExpandLabel(h, master, "s ap traffic", sfh, n)
	exp := keylog.ExpandLabel(h, master, "exp master", sfh, n)
	if !hmac.Equal(cats, r.ClientAppTrafficSecret[:n]) && !hmac.Equal(exp, r.ExporterMasterSecret[:n]) {
		return nil, fmt.Errorf("the secrets derived from the master secret and server_finished_hash are not OpenSSL's: %w", errKeysUnverified)
	}
	s.ClientHandshakeTrafficSecret, s.ServerHandshakeTrafficSecret = chts, shts
	s.ClientTrafficSecret0, s.ServerTrafficSecret0, s.ExporterSecret = cats, sats, exp
	return s, nil
}

// masterSecret derives the TLS 1.3 master secret from the handshake
// secret (RFC 8446, section 7.1): HKDF-Extract(Derive-Secret(hs,
// "derived", ""), 0).
func masterSecret(h crypto.Hash, hs []byte) []byte {
	empty := h.New().Sum(nil)
	salt := keylog.ExpandLabel(h, hs, "derived", empty, h.Size())
	mac := hmac.New(h.New, salt)
	mac.Write(make([]byte, h.Size()))
	return mac.Sum(nil)
}

// tlsVersionName names a protocol version.
func tlsVersionName(v int32) string {
	switch v {
	case 0x0304:
		return "TLS 1.3"
	case 0x0303:
		return "TLS 1.2"
	case 0x0302:
		return "TLS 1.1"
	case 0x0301:
		return "TLS 1.0"
	case 0x0300:
		return "SSL 3.0"
	case 0xfeff:
		return "DTLS 1.0"
	case 0xfefd:
		return "DTLS 1.2"
	}
	return fmt.Sprintf("%#04x", v)
}

// keyLogger writes each session's secrets once: to the key log file, to
// the pcapng file as a Decryption Secrets Block, or both. Safe for
// concurrent use.
type keyLogger struct {
	mu   sync.Mutex
	file *keylog.Writer                          // nil: no key file
	pcap interface{ WriteSecrets([]byte) error } // nil: no pcapng file
	seen map[[32]byte]uint16
	buf  []byte
}

// maxSeenSessions bounds the sessions keyLogger remembers.
const maxSeenSessions = 1 << 16

// log writes the lines of s unless its session was logged already, and
// reports whether it wrote them.
func (k *keyLogger) log(s *keylog.Session) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.seen[s.ClientRandom]; ok && v == s.Version {
		return false, nil
	}
	var err error
	if k.pcap != nil {
		if k.buf, err = s.AppendLines(k.buf[:0]); err != nil {
			return false, err
		}
		if err := k.pcap.WriteSecrets(k.buf); err != nil {
			return false, fmt.Errorf("writing secrets to the pcapng file: %w", err)
		}
	}
	if k.file != nil {
		if _, err := k.file.Write(s); err != nil {
			return false, err
		}
	}
	if k.seen == nil || len(k.seen) >= maxSeenSessions {
		k.seen = make(map[[32]byte]uint16, 1024)
	}
	k.seen[s.ClientRandom] = s.Version
	return true, nil
}

// connOf returns the connection of a keys record (IPv4-mapped IPv6
// addresses unmapped), zero when the kernel did not find it.
func connOf(r *keysRecord) (local, remote netip.AddrPort) {
	switch r.Family {
	case 2: // AF_INET
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Laddr[:4])), r.Lport),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Raddr[:4])), r.Rport)
	case 10: // AF_INET6
		return netip.AddrPortFrom(netip.AddrFrom16(r.Laddr).Unmap(), r.Lport),
			netip.AddrPortFrom(netip.AddrFrom16(r.Raddr).Unmap(), r.Rport)
	}
	return netip.AddrPort{}, netip.AddrPort{}
}

// keysOutcome is what became of one keys record.
type keysOutcome struct {
	logged  bool
	problem error // why the secrets were not logged; nil when logged or a duplicate
}

// fillKeysEvent fills ev, the tls_keys event of r, which had outcome o.
func fillKeysEvent(s *ebpfbase.Stamper, r *keysRecord, layoutName string, o keysOutcome, ev *sdk.Event) {
	s.FillEvent(&r.Hdr, ev)
	ev.Kind = KindTLSKeys
	ev.Route = sdk.RouteOutput
	ev.Payload = ev.Payload[:0]
	ev.Conn = sdk.Connection{ID: tlsrecord.ConnID(r.Hdr.PID, r.Session, r.Serial)}
	ev.Conn.Local, ev.Conn.Remote = connOf(r)
	ev.AddField(FieldLib, LibOpenSSL)
	ev.AddField(FieldVersion, tlsVersionName(r.Version))
	ev.AddField(FieldClientRandom, hex.EncodeToString(r.ClientRandom[:]))
	if r.CipherID != 0 {
		ev.AddField(FieldCipher, "0x"+strconv.FormatUint(uint64(r.CipherID&0xffff), 16))
	}
	if layoutName != "" {
		ev.AddField(FieldLayout, layoutName)
	}
	ev.AddField(FieldLogged, strconv.FormatBool(o.logged))
	if o.problem != nil {
		ev.AddField(FieldProblem, o.problem.Error())
	}
}
