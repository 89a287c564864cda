package opensslmod

import (
	"strings"
	"testing"
)

// TestLayoutTable checks each row against the offsets of the research
// behind it (offsetof() against 1.1.1w, 3.0.22 and 3.5.7, the disassembly
// of Debian's 3.0.19, eCapture's generated files), field by field as
// published there, so that a slip in the compact table shows.
func TestLayoutTable(t *testing.T) {
	type want struct {
		version                             string
		row                                 string
		sslType, ver, s3, clientRandom      int32
		hs, sfh, hth, cats, sats, exp, cfin int32
		session, sessCipher, sessCipherID   int32
		masterKeyLen, masterKey, cid, algo2 int32
	}
	tests := []want{
		{"1.1.1", "1.1.1a", -1, 0, 0xa8, 0xb8, 0x174, 0x2b4, 0x2f4, 0x334, 0x374, 0x3b4, 0x234, 0x510, 0x1f8, 0x200, 0x8, 0x50, 0x18, 0x40},
		{"1.1.1a", "1.1.1a", -1, 0, 0xa8, 0xb8, 0x174, 0x2b4, 0x2f4, 0x334, 0x374, 0x3b4, 0x234, 0x510, 0x1f8, 0x200, 0x8, 0x50, 0x18, 0x40},
		{"1.1.1c", "1.1.1b-c", -1, 0, 0xa8, 0xb8, 0x174, 0x2b4, 0x2f4, 0x334, 0x374, 0x3b4, 0x234, 0x508, 0x1f8, 0x200, 0x8, 0x50, 0x18, 0x40},
		{"1.1.1d", "1.1.1d-i", -1, 0, 0xa8, 0xb8, 0x17c, 0x2bc, 0x2fc, 0x33c, 0x37c, 0x3bc, 0x23c, 0x510, 0x1f8, 0x200, 0x8, 0x50, 0x18, 0x40},
		{"1.1.1k", "1.1.1j-w", -1, 0, 0xa8, 0xb8, 0x17c, 0x2bc, 0x2fc, 0x33c, 0x37c, 0x3bc, 0x23c, 0x510, 0x1f0, 0x1f8, 0x8, 0x50, 0x18, 0x40},
		{"1.1.1w", "1.1.1j-w", -1, 0, 0xa8, 0xb8, 0x17c, 0x2bc, 0x2fc, 0x33c, 0x37c, 0x3bc, 0x23c, 0x510, 0x1f0, 0x1f8, 0x8, 0x50, 0x18, 0x40},
		{"3.0.0", "3.0-3.1", -1, 0, -1, 0x160, 0x584, 0x6c4, 0x704, 0x744, 0x784, 0x7c4, 0x644, 0x918, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.0.19", "3.0-3.1", -1, 0, -1, 0x160, 0x584, 0x6c4, 0x704, 0x744, 0x784, 0x7c4, 0x644, 0x918, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.1.6", "3.0-3.1", -1, 0, -1, 0x160, 0x584, 0x6c4, 0x704, 0x744, 0x784, 0x7c4, 0x644, 0x918, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.2.0", "3.2.0-2", 0, 0x40, -1, 0x140, 0x53c, 0x67c, 0x6bc, 0x6fc, 0x73c, 0x77c, 0x5fc, 0x880, 0x300, 0x308, 0x8, 0x50, 0x18, 0x40},
		{"3.2.3", "3.2.3", 0, 0x40, -1, 0x140, 0x53c, 0x67c, 0x6bc, 0x6fc, 0x73c, 0x77c, 0x5fc, 0x880, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.2.4", "3.2.4+", 0, 0x48, -1, 0x148, 0x544, 0x684, 0x6c4, 0x704, 0x744, 0x784, 0x604, 0x888, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.3.1", "3.3.0-1", 0, 0x40, -1, 0x140, 0x53c, 0x67c, 0x6bc, 0x6fc, 0x73c, 0x77c, 0x5fc, 0x880, 0x300, 0x308, 0x8, 0x50, 0x18, 0x40},
		{"3.3.2", "3.3.2", 0, 0x40, -1, 0x140, 0x53c, 0x67c, 0x6bc, 0x6fc, 0x73c, 0x77c, 0x5fc, 0x880, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.3.3", "3.3.3+", 0, 0x48, -1, 0x148, 0x544, 0x684, 0x6c4, 0x704, 0x744, 0x784, 0x604, 0x888, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.4.0", "3.4.0", 0, 0x40, -1, 0x140, 0x53c, 0x67c, 0x6bc, 0x6fc, 0x73c, 0x77c, 0x5fc, 0x880, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.4.1", "3.4.1+", 0, 0x48, -1, 0x148, 0x544, 0x684, 0x6c4, 0x704, 0x744, 0x784, 0x604, 0x888, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.5.0", "3.5", 0, 0x48, -1, 0x188, 0x5bc, 0x6fc, 0x73c, 0x77c, 0x7bc, 0x7fc, 0x67c, 0x900, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
		{"3.5.7", "3.5", 0, 0x48, -1, 0x188, 0x5bc, 0x6fc, 0x73c, 0x77c, 0x7bc, 0x7fc, 0x67c, 0x900, 0x2f8, 0x300, 0x8, 0x50, 0x18, 0x40},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v, err := parseVersion(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := lookupLayout(v)
			if !ok || r.name != tt.row {
				t.Fatalf("row %q (found %v), want %q", r.name, ok, tt.row)
			}
			l := r.layout
			got := want{tt.version, r.name, l.SSLType, l.Version, l.S3, l.ClientRandom,
				l.HandshakeSecret, l.ServerFinishedHash, l.HandshakeTrafficHash, l.ClientAppTrafficSecret, l.ServerAppTrafficSecret,
				l.ExporterMasterSecret, l.ClientFinishedSecret, l.Session, l.SessionCipher, l.SessionCipherID,
				l.SessionMasterKeyLength, l.SessionMasterKey, l.CipherID, l.CipherAlgorithm2}
			if got != tt {
				t.Errorf("layout\n got %+v\nwant %+v", got, tt)
			}
			if l.Valid != 1 || checkLayout(l) != nil {
				t.Errorf("row not usable: valid %d, %v", l.Valid, checkLayout(l))
			}
		})
	}
}

func TestUnknownVersions(t *testing.T) {
	for _, s := range []string{"1.1.0l", "1.1.1x", "1.0.2u", "3.6.0", "4.0.0", "9.9.9", "0.9.8"} {
		v, err := parseVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := lookupLayout(v); ok {
			t.Errorf("%s has layout %s", s, r.name)
		}
	}
}

func TestTableRowsOrdered(t *testing.T) {
	for i, r := range layoutTable {
		lo, hi := mustVersion(r.min), mustVersion(r.max)
		if lo.compare(hi) > 0 {
			t.Errorf("row %s: min %s after max %s", r.name, r.min, r.max)
		}
		for _, o := range layoutTable[i+1:] {
			if lo.compare(mustVersion(o.max)) <= 0 && mustVersion(o.min).compare(hi) <= 0 {
				t.Errorf("rows %s and %s overlap", r.name, o.name)
			}
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want version
		err  bool
	}{
		{"3.0.19", version{3, 0, 19, 0}, false},
		{"1.1.1w", version{1, 1, 1, 23}, false},
		{"1.1.1", version{1, 1, 1, 0}, false},
		{"3.5", version{}, true},
		{"3.x.1", version{}, true},
		{"", version{}, true},
		{"3.0.1000", version{}, true},
	}
	for _, tt := range tests {
		got, err := parseVersion(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseVersion(%q) = %+v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%+v prints as %s, want %s", got, got.String(), tt.in)
		}
	}
}

func TestApplyOffsets(t *testing.T) {
	row, _ := lookupLayout(mustVersion("3.0.19"))
	l := row.layout
	set, err := applyOffsets(&l, []string{"handshake_secret=0x600", " session = 2328 ", "ssl_type=-1"})
	if err != nil || len(set) != 3 {
		t.Fatal(set, err)
	}
	if l.HandshakeSecret != 0x600 || l.Session != 2328 || l.SSLType != -1 || l.ClientRandom != 0x160 {
		t.Errorf("layout %+v", l)
	}
	for _, bad := range [][]string{{"nope=1"}, {"session"}, {"session=x"}, {"session=1", "session=2"}, {"session=-2"}, {"session=0x100000"}, {"valid=1"}} {
		if _, err := applyOffsets(&l, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Every name is that of struct openssl_layout's field.
	for _, n := range offsetNames() {
		if strings.ToLower(n) != n || strings.Contains(n, "__") {
			t.Errorf("offset name %q", n)
		}
	}
	if got := strings.Join(offsetNames()[:4], ","); got != "ssl_type,version,s3,client_random" {
		t.Errorf("names start %s", got)
	}
	// Given in full, from nothing.
	full := unsetLayout()
	if checkLayout(full) == nil {
		t.Error("an unset layout passes the check")
	}
	var all []string
	for _, n := range offsetNames() {
		all = append(all, n+"=0x10")
	}
	if _, err := applyOffsets(&full, all); err != nil || checkLayout(full) != nil {
		t.Errorf("full offsets: %v, %v", err, checkLayout(full))
	}
}
