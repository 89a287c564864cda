package keylog

import (
	"crypto"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/ecaphost/ecaphost/sdk/safefile"
)

// TLS versions, as on the wire.
const (
	VersionTLS12 = 0x0303
	VersionTLS13 = 0x0304
)

// Session holds what is known of one TLS session's secrets. Empty secrets
// are left out of the log.
type Session struct {
	ClientRandom [32]byte
	Version      uint16
	// TLS 1.2 and older.
	MasterSecret []byte
	// TLS 1.3.
	ClientHandshakeTrafficSecret []byte
	ServerHandshakeTrafficSecret []byte
	ClientTrafficSecret0         []byte
	ServerTrafficSecret0         []byte
	ExporterSecret               []byte
}

// ErrNoSecret is returned for a session with no secret to log.
var ErrNoSecret = errors.New("no secret to log")

// AppendLines appends the session's key log lines to dst.
func (s *Session) AppendLines(dst []byte) ([]byte, error) {
	n := len(dst)
	add := func(label string, secret []byte) {
		if len(secret) == 0 {
			return
		}
		dst = append(dst, label...)
		dst = append(dst, ' ')
		dst = hex.AppendEncode(dst, s.ClientRandom[:])
		dst = append(dst, ' ')
		dst = hex.AppendEncode(dst, secret)
		dst = append(dst, '\n')
	}
	if s.Version == VersionTLS13 {
		add("CLIENT_HANDSHAKE_TRAFFIC_SECRET", s.ClientHandshakeTrafficSecret)
		add("SERVER_HANDSHAKE_TRAFFIC_SECRET", s.ServerHandshakeTrafficSecret)
		add("CLIENT_TRAFFIC_SECRET_0", s.ClientTrafficSecret0)
		add("SERVER_TRAFFIC_SECRET_0", s.ServerTrafficSecret0)
		add("EXPORTER_SECRET", s.ExporterSecret)
	} else {
		add("CLIENT_RANDOM", s.MasterSecret)
	}
	if len(dst) == n {
		return dst, ErrNoSecret
	}
	return dst, nil
}

// maxSeen bounds the sessions a Writer remembers to log each only once.
const maxSeen = 1 << 16

// Writer appends sessions' lines to a key log file, each session once.
// It is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	seen  map[[32]byte]uint16
	order [][32]byte // insertion order, to forget the oldest beyond maxSeen
	buf   []byte
	n     int
}

// Create opens path for appending through safefile.Append: created with
// mode 0600; an existing file is appended to (never truncated) only when it
// is a regular file of root or the running user that group and others
// cannot write, and is narrowed to 0600 if they can read it, since the file
// holds the keys to the traffic; a symbolic link or FIFO is refused.
func Create(path string) (*Writer, error) {
	f, err := safefile.Append(path)
	if err != nil {
		return nil, fmt.Errorf("opening key log file: %w", err)
	}
	return &Writer{f: f, seen: map[[32]byte]uint16{}}, nil
}

// Write logs s unless a session with the same client random and version
// was logged already; it reports whether it wrote. The lines reach the
// file before Write returns, all of them or (on an error) none.
func (w *Writer) Write(s *Session) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.seen[s.ClientRandom]; ok && v == s.Version {
		return false, nil
	}
	var err error
	w.buf, err = s.AppendLines(w.buf[:0])
	if err != nil {
		return false, err
	}
	if n, err := w.f.Write(w.buf); err != nil {
		if n > 0 {
			// A short write (a full disk) left part of a line: take it
			// back, or the next session's first line would be glued to it.
			if st, serr := w.f.Stat(); serr == nil {
				err = errors.Join(err, w.f.Truncate(st.Size()-int64(n)))
			}
		}
		return false, fmt.Errorf("writing key log: %w", err)
	}
	if len(w.order) >= maxSeen {
		delete(w.seen, w.order[0])
		w.order = w.order[1:]
	}
	w.seen[s.ClientRandom] = s.Version
	w.order = append(w.order, s.ClientRandom)
	w.n++
	return true, nil
}

// Sessions returns how many sessions were written.
func (w *Writer) Sessions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// ExpandLabel is TLS 1.3's HKDF-Expand-Label(secret, label, context,
// length) with hash (RFC 8446, section 7.1); label is without the "tls13 "
// prefix.
func ExpandLabel(hash crypto.Hash, secret []byte, label string, context []byte, length int) []byte {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full)+len(context))
	info = append(info, byte(length>>8), byte(length), byte(len(full)))
	info = append(info, full...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	return hkdfExpand(hash, secret, info, length)
}

// hkdfExpand is HKDF-Expand (RFC 5869).
func hkdfExpand(hash crypto.Hash, prk, info []byte, length int) []byte {
	out := make([]byte, 0, length)
	var t []byte
	for i := byte(1); len(out) < length; i++ {
		mac := hmac.New(hash.New, prk)
		mac.Write(t)
		mac.Write(info)
		mac.Write([]byte{i})
		t = mac.Sum(nil)
		out = append(out, t...)
	}
	return out[:length]
}

// HandshakeTrafficSecrets derives TLS 1.3's client and server handshake
// traffic secrets from the handshake secret and the transcript hash of
// ClientHello..ServerHello.
func HandshakeTrafficSecrets(hash crypto.Hash, handshakeSecret, transcript []byte) (client, server []byte) {
	return ExpandLabel(hash, handshakeSecret, "c hs traffic", transcript, hash.Size()),
		ExpandLabel(hash, handshakeSecret, "s hs traffic", transcript, hash.Size())
}
