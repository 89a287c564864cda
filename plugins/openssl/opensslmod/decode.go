package opensslmod

import (
	"github.com/ecaphost/ecaphost/sdk"
	"github.com/ecaphost/ecaphost/sdk/tlsrecord"
)

// Event kind and fields: those of sdk/tlsrecord, which decodes the records.
const (
	KindTLSData = tlsrecord.KindTLSData
	// FieldLib is the library, "openssl".
	FieldLib = tlsrecord.FieldLib
	// FieldFn is the library function: SSL_write, SSL_read, SSL_write_ex
	// or SSL_read_ex.
	FieldFn = tlsrecord.FieldFn
	// FieldTruncated is "true" on the last event of a call longer than the
	// kernel sends (16 MiB), and on a chunk it could not read: bytes of the
	// call are missing after it.
	FieldTruncated = tlsrecord.FieldTruncated
	// FieldGap is "true" on an event when records of its connection and
	// direction were lost just before it (ring buffer full, unreadable or
	// truncated data): its payload does not follow on from the previous
	// event's of that direction.
	FieldGap = tlsrecord.FieldGap
	// LibOpenSSL is the value of FieldLib.
	LibOpenSSL = "openssl"
)

// Values of kern/include/tls.h.
const (
	chunkMax = tlsrecord.ChunkMax
	statsMap = tlsrecord.StatsMap
)

// fnNames are the names of enum openssl_fn (kern/openssl_kern.c).
var fnNames = []string{1: "SSL_write", 2: "SSL_read", 3: "SSL_write_ex", 4: "SSL_read_ex"}

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, function or direction, length out of range).
var ErrBadRecord = tlsrecord.ErrBadRecord

// ConnID is the sdk.Connection ID of the session at address session in
// process pid, told apart from earlier sessions at that address by serial
// (tlsrecord.ConnID). It is never 0.
func ConnID(pid uint32, session, serial uint64) uint64 {
	return tlsrecord.ConnID(pid, session, serial)
}

// Decode decodes a struct tls_data_event into a tls_data event with
// tlsrecord.Decoder. It never panics: a short or inconsistent record is an
// error wrapping ebpfbase.ErrShortRecord or ErrBadRecord. It allocates
// nothing once ev's payload and fields have grown (and a session is known
// to the gap tracker). In the key modes it handles their records instead
// (keyMode.decode): a session's secrets become a tls_keys event once
// logged; a packet is written to the pcapng file.
func (m *Module) Decode(mapName string, raw []byte, ev *sdk.Event) error {
	if m.keyMode() {
		return m.keys.decode(mapName, raw, ev)
	}
	_, err := m.dec.Decode(raw, ev)
	return err
}
