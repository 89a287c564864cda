// Package intern turns byte slices into strings without allocating for
// values seen before: command names, event kinds and field keys repeat
// from event to event. ebpfbase and the host's batch decoder use it.
package intern
