// Package tlsrecord decodes the plaintext records of TLS library modules:
// the Go half of kern/include/tls.h, shared by every module built on it
// (openssl, nspr, gnutls...).
//
// On the kernel side a module probes its library's read and write
// functions with tls.h, which sends each call that moved data as records
// struct tls_data_event: the common header, the library's session pointer
// and serial, the call's sequence number, length and the chunk's offset,
// the connection's addresses, a module-defined function number and info
// value, and at most ChunkMax bytes of plaintext. Record is the Go twin of
// that struct; CheckLayout proves it against a module's object in tests.
//
// A module keeps one Decoder, tells it the library's name and its function
// names, and calls Decoder.Decode from its ebpfbase.Hooks Decode:
//
//	m.dec = tlsrecord.Decoder{Lib: "gnutls", Fns: []string{1: "gnutls_record_send", 2: "gnutls_record_recv"}}
//
//	func (m *Module) Decode(_ string, raw []byte, ev *sdk.Event) error {
//		_, err := m.dec.Decode(raw, ev)
//		return err
//	}
//
// Decode fills a "tls_data" event routed to the host's stream decoding
// (sdk.RouteStream): the payload, the connection (ConnID of the process,
// session and serial; addresses; direction), and the fields lib, fn, and
// truncated and gap when bytes are missing. It never panics on short or
// hostile input. The kernel counters of tls.h are named by Counters, for
// ebpfbase.Spec.
package tlsrecord
