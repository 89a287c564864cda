package opensslmod

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// layout is the Go twin of struct openssl_layout (kern/openssl_kern.c):
// where one OpenSSL version keeps what the key modes read, in bytes from
// the structure named in each comment, on x86-64. A negative offset is a
// field the version lacks. Its layout is checked against the object's BTF.
type layout struct {
	Valid                  int32 // 1 in a slot in use
	SSLType                int32 // SSL: int type (3.2+, 0 = TLS connection); -1 before 3.2
	Version                int32 // SSL: int version, the negotiated protocol
	S3                     int32 // SSL: the s3 pointer (1.1.1); -1: s3 is embedded (3.x)
	ClientRandom           int32 // *s3 (1.1.1) or SSL (3.x): unsigned char[32]
	HandshakeSecret        int32 // SSL: unsigned char[64], like the five below
	HandshakeTrafficHash   int32
	ClientFinishedSecret   int32
	ServerFinishedHash     int32
	ClientAppTrafficSecret int32
	ServerAppTrafficSecret int32
	ExporterMasterSecret   int32
	Session                int32 // SSL: SSL_SESSION *session
	SessionMasterKeyLength int32 // SSL_SESSION: size_t master_key_length
	SessionMasterKey       int32 // SSL_SESSION: unsigned char master_key[]
	SessionCipher          int32 // SSL_SESSION: const SSL_CIPHER *cipher
	SessionCipherID        int32 // SSL_SESSION: unsigned long cipher_id
	CipherID               int32 // SSL_CIPHER: uint32_t id
	CipherAlgorithm2       int32 // SSL_CIPHER: uint32_t algorithm2
	Reserved               int32
}

// maxLayouts is OPENSSL_MAX_LAYOUTS: how many binaries of distinct
// layouts the key modes probe at once.
const maxLayouts = 4

// secretStride is sizeof(unsigned char[EVP_MAX_MD_SIZE]): OpenSSL keeps
// the TLS 1.3 key schedule as consecutive arrays in this order, in every
// version of the table: early_secret, handshake_secret, master_secret,
// resumption_master_secret, client_finished_secret,
// server_finished_secret, server_finished_hash, handshake_traffic_hash,
// client_app_traffic_secret, server_app_traffic_secret,
// exporter_master_secret, early_exporter_master_secret.
const secretStride = 64

// withSecrets returns l with the TLS 1.3 arrays placed after the
// handshake_secret at hs.
func (l layout) withSecrets(hs int32) layout {
	l.HandshakeSecret = hs
	l.ClientFinishedSecret = hs + 3*secretStride
	l.ServerFinishedHash = hs + 5*secretStride
	l.HandshakeTrafficHash = hs + 6*secretStride
	l.ClientAppTrafficSecret = hs + 7*secretStride
	l.ServerAppTrafficSecret = hs + 8*secretStride
	l.ExporterMasterSecret = hs + 9*secretStride
	return l
}

// The members of SSL_SESSION and SSL_CIPHER that no version moved.
var (
	layout111 = layout{Valid: 1, SSLType: -1, Version: 0, S3: 0xa8, ClientRandom: 0xb8,
		SessionMasterKeyLength: 0x8, SessionMasterKey: 0x50, CipherID: 0x18, CipherAlgorithm2: 0x40}
	layout30 = layout{Valid: 1, SSLType: -1, Version: 0, S3: -1, ClientRandom: 0x160,
		SessionMasterKeyLength: 0x8, SessionMasterKey: 0x50, CipherID: 0x18, CipherAlgorithm2: 0x40}
	layout32 = layout{Valid: 1, SSLType: 0, Version: 0x40, S3: -1, ClientRandom: 0x140,
		SessionMasterKeyLength: 0x8, SessionMasterKey: 0x50, CipherID: 0x18, CipherAlgorithm2: 0x40}
)

func (l layout) session(sess, cipher, cipherID int32) layout {
	l.Session, l.SessionCipher, l.SessionCipherID = sess, cipher, cipherID
	return l
}

func (l layout) at(version, clientRandom int32) layout {
	l.Version, l.ClientRandom = version, clientRandom
	return l
}

// layoutRow is one row of the table: the OpenSSL releases from min to max
// (inclusive) share a layout.
type layoutRow struct {
	min, max string
	name     string // e.g. "3.0"
	layout   layout
	// source says how the offsets were obtained.
	source string
}

// Sources of the rows.
const (
	srcVerified = "verified: offsetof() compiled against the release's private headers"
	srcBinary   = "verified: offsetof() against 3.0.22's headers, the accessors of Debian's 3.0.19 binary disassembled, and keys checked against curl's SSLKEYLOGFILE by the tests"
	srcTable    = "from eCapture's offsets generated from the release's source (TLS 1.3 arrays derived from handshake_secret); not checked here against a binary"
)

// layoutTable holds the layouts of OpenSSL 1.1.1 and 3.0 to 3.5 on
// x86-64. A row's max of "x.y.99" covers the later patch releases of the
// series, assumed to keep the layout: stable branches change it only
// through backported fixes, and the known ones (3.2.3/3.3.2/3.4.0:
// SSL_SESSION.references moved; 3.2.4/3.3.3/3.4.1: SSL_CONNECTION.user_ssl
// added) have their rows. 1.1.1 without a letter is assumed to be laid
// out as 1.1.1a. Each row's source says how its offsets were obtained;
// TestLayoutTable holds them field by field as the research published
// them (offsetof() against the private headers of 1.1.1w, 3.0.22 and
// 3.5.7; the accessors of Debian's 3.0.19 disassembled; eCapture's files
// generated from each release's source for the others).
var layoutTable = []layoutRow{
	{min: "1.1.1", max: "1.1.1a", name: "1.1.1a", source: srcTable,
		layout: layout111.withSecrets(0x174).session(0x510, 0x1f8, 0x200)},
	{min: "1.1.1b", max: "1.1.1c", name: "1.1.1b-c", source: srcTable,
		layout: layout111.withSecrets(0x174).session(0x508, 0x1f8, 0x200)},
	{min: "1.1.1d", max: "1.1.1i", name: "1.1.1d-i", source: srcTable,
		layout: layout111.withSecrets(0x17c).session(0x510, 0x1f8, 0x200)},
	{min: "1.1.1j", max: "1.1.1w", name: "1.1.1j-w", source: srcVerified + " (1.1.1w)",
		layout: layout111.withSecrets(0x17c).session(0x510, 0x1f0, 0x1f8)},
	{min: "3.0.0", max: "3.1.99", name: "3.0-3.1", source: srcBinary,
		layout: layout30.withSecrets(0x584).session(0x918, 0x2f8, 0x300)},
	{min: "3.2.0", max: "3.2.2", name: "3.2.0-2", source: srcTable,
		layout: layout32.withSecrets(0x53c).session(0x880, 0x300, 0x308)},
	{min: "3.2.3", max: "3.2.3", name: "3.2.3", source: srcTable,
		layout: layout32.withSecrets(0x53c).session(0x880, 0x2f8, 0x300)},
	{min: "3.2.4", max: "3.2.99", name: "3.2.4+", source: srcTable,
		layout: layout32.at(0x48, 0x148).withSecrets(0x544).session(0x888, 0x2f8, 0x300)},
	{min: "3.3.0", max: "3.3.1", name: "3.3.0-1", source: srcTable + " (eCapture generated it from 3.2.2)",
		layout: layout32.withSecrets(0x53c).session(0x880, 0x300, 0x308)},
	{min: "3.3.2", max: "3.3.2", name: "3.3.2", source: srcTable,
		layout: layout32.withSecrets(0x53c).session(0x880, 0x2f8, 0x300)},
	{min: "3.3.3", max: "3.3.99", name: "3.3.3+", source: srcTable,
		layout: layout32.at(0x48, 0x148).withSecrets(0x544).session(0x888, 0x2f8, 0x300)},
	{min: "3.4.0", max: "3.4.0", name: "3.4.0", source: srcTable,
		layout: layout32.withSecrets(0x53c).session(0x880, 0x2f8, 0x300)},
	{min: "3.4.1", max: "3.4.99", name: "3.4.1+", source: srcTable,
		layout: layout32.at(0x48, 0x148).withSecrets(0x544).session(0x888, 0x2f8, 0x300)},
	{min: "3.5.0", max: "3.5.99", name: "3.5", source: srcVerified + " (3.5.7)",
		layout: layout32.at(0x48, 0x188).withSecrets(0x5bc).session(0x900, 0x2f8, 0x300)},
}

// version is an OpenSSL release: 3.0.19 is {3, 0, 19, 0}, 1.1.1w is
// {1, 1, 1, 23} (letters a..z are 1..26).
type version struct {
	major, minor, patch, letter int
}

func (v version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
	if v.letter > 0 {
		s += string(rune('a' + v.letter - 1))
	}
	return s
}

func (v version) compare(w version) int {
	for _, d := range []int{v.major - w.major, v.minor - w.minor, v.patch - w.patch, v.letter - w.letter} {
		if d != 0 {
			return d
		}
	}
	return 0
}

// parseVersion parses "3.0.19" or "1.1.1w".
func parseVersion(s string) (version, error) {
	var v version
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("OpenSSL version %q is not MAJOR.MINOR.PATCH", s)
	}
	last := parts[2]
	if n := len(last); n > 0 && last[n-1] >= 'a' && last[n-1] <= 'z' {
		v.letter = int(last[n-1]-'a') + 1
		last = last[:n-1]
	}
	nums := []*int{&v.major, &v.minor, &v.patch}
	for i, p := range []string{parts[0], parts[1], last} {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return version{}, fmt.Errorf("OpenSSL version %q is not MAJOR.MINOR.PATCH", s)
		}
		*nums[i] = n
	}
	return v, nil
}

func mustVersion(s string) version {
	v, err := parseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// lookupLayout returns the row of the table covering v.
func lookupLayout(v version) (layoutRow, bool) {
	for _, r := range layoutTable {
		if v.compare(mustVersion(r.min)) >= 0 && v.compare(mustVersion(r.max)) <= 0 {
			return r, true
		}
	}
	return layoutRow{}, false
}

// supportedVersions describes the table for messages.
const supportedVersions = "1.1.1 to 1.1.1w and 3.0 to 3.5"

// offsetFields are the names the offsets attribute accepts, those of
// struct openssl_layout, with the Go field each sets.
var offsetFields = func() []struct{ name, field string } {
	var out []struct{ name, field string }
	t := reflect.TypeOf(layout{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i).Name
		if f == "Valid" || f == "Reserved" {
			continue
		}
		out = append(out, struct{ name, field string }{snake(f), f})
	}
	return out
}()

// snake turns a Go field name into the C one: SSLType -> ssl_type,
// ClientAppTrafficSecret -> client_app_traffic_secret, S3 -> s3.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prevUpper := s[i-1] >= 'A' && s[i-1] <= 'Z'
			nextLower := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
			if !prevUpper || nextLower {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// offsetNames lists the names the offsets attribute accepts.
func offsetNames() []string {
	out := make([]string, len(offsetFields))
	for i, f := range offsetFields {
		out[i] = f.name
	}
	return out
}

// applyOffsets sets the fields named in specs ("name=value", the value
// decimal or 0x hex, -1 for a field the version lacks) in l, and returns
// the names set.
func applyOffsets(l *layout, specs []string) ([]string, error) {
	var set []string
	v := reflect.ValueOf(l).Elem()
	for _, spec := range specs {
		name, val, ok := strings.Cut(spec, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("%q is not name=offset (e.g. \"handshake_secret=0x584\")", spec)
		}
		i := slices.IndexFunc(offsetFields, func(f struct{ name, field string }) bool { return f.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown offset %q; known: %s", name, strings.Join(offsetNames(), ", "))
		}
		n, err := strconv.ParseInt(val, 0, 32)
		if err != nil || n < -1 || n > 1<<16 {
			return nil, fmt.Errorf("offset %s=%s: want a byte offset (decimal or 0x hex) below 65536, or -1", name, val)
		}
		if slices.Contains(set, name) {
			return nil, fmt.Errorf("offset %s set twice", name)
		}
		v.FieldByName(offsetFields[i].field).SetInt(n)
		set = append(set, name)
	}
	return set, nil
}

// unsetLayout returns a layout in use whose offsets are all -1 (unset),
// for offsets given in full.
func unsetLayout() layout {
	l := layout{Valid: 1}
	v := reflect.ValueOf(&l).Elem()
	for _, f := range offsetFields {
		v.FieldByName(f.field).SetInt(-1)
	}
	return l
}

// checkLayout reports a layout that cannot be right: a required offset
// missing (negative).
func checkLayout(l layout) error {
	v := reflect.ValueOf(l)
	var bad []string
	for _, f := range offsetFields {
		switch f.field {
		case "SSLType", "S3":
			continue // -1 is meaningful
		}
		if v.FieldByName(f.field).Int() < 0 {
			bad = append(bad, f.name)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("offsets %s must be set (0 or more)", strings.Join(bad, ", "))
	}
	return nil
}
