package gotlsmod

import "github.com/ecaphost/ecaphost/sdk/tlsrecord"

// Event kind and fields of plaintext: those of sdk/tlsrecord.
const (
	KindTLSData = tlsrecord.KindTLSData
	// FieldLib is the library, "go".
	FieldLib = tlsrecord.FieldLib
	// FieldFn is the function: "Write" or "Read" (of crypto/tls.Conn).
	FieldFn = tlsrecord.FieldFn
	// FieldTruncated and FieldGap say bytes are missing (tlsrecord).
	FieldTruncated = tlsrecord.FieldTruncated
	FieldGap       = tlsrecord.FieldGap
	// LibGo is the value of FieldLib.
	LibGo = "go"
)

// fnNames are the names of enum gotls_fn (kern/gotls_kern.c).
var fnNames = []string{1: "Write", 2: "Read"}

// ErrBadRecord is wrapped by Decode for a record whose fields are
// inconsistent (unknown kind, function, direction, label, lengths out of
// range).
var ErrBadRecord = tlsrecord.ErrBadRecord
