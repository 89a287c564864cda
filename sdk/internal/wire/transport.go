package wire

import "time"

// Batching defaults, used for the fields of the host's Transport left
// zero. MaxBatchBytes stays well under gRPC's default 4 MiB message limit,
// with room for event metadata.
const (
	DefaultMaxBatchEvents   = 1024
	DefaultMaxBatchBytes    = 1 << 20
	DefaultFlushInterval    = 50 * time.Millisecond
	DefaultMaxFragmentBytes = 256 << 10
	// MaxTransportBytes bounds what a host may ask for, so one batch always
	// fits one gRPC message.
	MaxTransportBytes = 3 << 20
)
