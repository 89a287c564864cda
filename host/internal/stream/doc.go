// Package stream turns the plaintext records of a connection, as modules
// capture them (sdk.RouteStream events), into one event per HTTP message.
//
// Records arrive in order per connection and direction but in any chunking:
// a record may hold half a header block, three pipelined requests or 16 KiB
// of a 1 MiB body. A Decoder joins them per connection, keyed by the PID and
// sdk.Connection.ID of the record (an ID of 0, or an unknown direction, means
// the record cannot be joined and is passed through unchanged), and decodes:
//
//   - HTTP/1.x, recognised by a request line ("GET /x HTTP/1.1") or a status
//     line ("HTTP/1.1 200 ..."), in either direction, so a captured client
//     (egress requests) and a captured server (ingress requests) both work.
//     Bodies framed by Content-Length, chunked (trailers included), no body
//     (requests without a length, 1xx/204/304, responses to HEAD) or until
//     the connection ends, which Flush detects as idleness. Pipelined and
//     keep-alive messages follow one another. After a 101 response or a 2xx
//     response to CONNECT the connection is passed through.
//   - HTTP/2, recognised by the client connection preface; the direction that
//     sent it is the client. Frames are parsed in both directions, header
//     blocks decoded with one HPACK decoder per direction, and every stream
//     yields a request event when the client's side of it ends and a
//     response event when the server's side ends. Informational (1xx)
//     responses are events of their own.
//
// Anything else is passed through: records keep their Kind (for example
// "tls_data") and their payload, so the output shows them as text or a hex
// dump. Bytes that break the protocol part way are passed through too, from
// that point on, the first event carrying the field protocol_error; a
// message whose header block was good is emitted first, incomplete. HTTP/1
// resumes at a record that starts with a message; HTTP/2 cannot, as the
// HPACK state is lost.
//
// # Emitted events
//
// An HTTP message becomes an event with the metadata (Time, Module, PID, TID,
// UID, Comm, Conn with its Direction, Route) of the record that completed
// it, Kind "http_request" or "http_response", and a Payload for display:
// for HTTP/1 the start line and header block as received, the blank line,
// then the decoded body (de-chunked, decompressed); for HTTP/2 one
// "name: value" line per header field, pseudo-header fields first as
// received, a blank line, then the decoded body.
//
// Fields, in this order, each present only when it applies:
//
//	proto             "HTTP/1.0", "HTTP/1.1" or "HTTP/2"
//	method            request method
//	path              request target (":path" for HTTP/2)
//	host              HTTP/1 Host header
//	authority         HTTP/2 ":authority"
//	status            response status code, e.g. "200"
//	stream_id         HTTP/2 stream identifier
//	body_bytes        length of the body as shown in Payload (decoded)
//	wire_body_bytes   length of the body on the wire: for HTTP/1 every byte
//	                  after the header block, chunk framing included; for
//	                  HTTP/2 the DATA payloads without padding (bytes the
//	                  module did not copy included)
//	content_encoding  the content codings that were undone, e.g. "gzip"
//	decode_error      why the body is shown as captured (unsupported or
//	                  broken content coding)
//	truncated         "true": the message outgrew Options.MaxBuffer (or its
//	                  decoded body did), or the module did not copy some of
//	                  its body (see below); the Payload holds what there is
//	incomplete        "true": the message was cut short by Flush, eviction,
//	                  an HTTP/2 RST_STREAM or bytes not copied before its
//	                  framing ended
//	payload_bytes     with truncated, when the body is shown as captured:
//	                  the length the Payload would have had
//	reset             HTTP/2 RST_STREAM error code name, e.g. "CANCEL"
//	header.<Name>     one per header field, Name in canonical form
//	                  ("header.Content-Type"), repeated for repeated fields
//	trailer.<Name>    one per trailer field (chunked trailers, HTTP/2
//	                  trailing HEADERS)
//
// Bytes passed through after a protocol error carry, as their only field:
//
//	protocol_error    what broke, e.g. "http/1: malformed chunk framing"
//
// # Bytes not copied
//
// A record with the field payload_bytes (tlsrecord.FieldPayloadBytes: a
// TLS module cut the call to max_data, or while its kernel buffer was over
// half full) is followed in its stream by payload_bytes - len(Payload)
// bytes that were not copied. They are stepped over, not guessed: inside
// an HTTP/1 body framed by Content-Length or until close, or inside an
// HTTP/2 DATA frame, they count as the body's (wire_body_bytes), the body
// is shown as captured, without its content coding undone, and the message
// is marked truncated with payload_bytes. Elsewhere (a chunk-size line, a
// header block, the start of the next message, a frame header) the framing
// is lost and counted (Stats.Lost): the message under way is emitted
// incomplete, HTTP/1 resumes at the next record that starts a message, and
// HTTP/2 passes the direction through from then on, as after a protocol
// error.
//
// # Memory
//
// Each connection direction buffers at most Options.MaxBuffer bytes of
// message (HTTP/2: of bodies across its streams, plus one partial frame);
// a longer message is emitted truncated and counted, never cut silently. A
// header block is bounded by 256 KiB, a decoded body by MaxBuffer. At most
// Options.MaxConns connections are tracked: a new one evicts the least
// recently used, which first emits what it holds. An HTTP/2 connection
// tracks at most 256 open streams (the oldest is emitted incomplete to make
// room) and accepts HPACK tables of at most 64 KiB. Nothing runs in the
// background: the caller drives idleness with Flush.
package stream
