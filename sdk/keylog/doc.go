// Package keylog writes TLS session secrets in the NSS Key Log Format
// that Wireshark, tshark and curl's SSLKEYLOGFILE use:
//
//	CLIENT_RANDOM <client random> <master secret>                  (TLS 1.2 and older)
//	CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>       (TLS 1.3)
//	SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0,
//	SERVER_TRAFFIC_SECRET_0, EXPORTER_SECRET                        (TLS 1.3)
//
// all in lower-case hex. A Writer writes each session's lines once, as soon
// as it is given them, to a file only its owner can read, so that a reader
// tailing the file decrypts each session promptly. ExpandLabel implements
// TLS 1.3's HKDF-Expand-Label (RFC 8446, section 7.1) for modules that
// must derive a secret the library does not keep (OpenSSL keeps the
// handshake secret and the transcript hash, not the handshake traffic
// secrets).
package keylog
