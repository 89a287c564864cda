// Package output writes captured events to the outputs of a configuration:
// stdout or an append-only file, in one of three formats.
//
//   - "text", for people: one line per event with the ids and fields as
//     key=value; a payload that is one line of printable text ends the
//     line, longer text follows as an indented block, anything else as an
//     indented hex dump.
//   - "json": JSON lines, one object per event.
//   - "protobuf": length-delimited ecaphost.output.v1.Event messages (see
//     shared/proto/outputv1), the framing of protodelim.
//
// Each Writer owns a goroutine, a bounded queue of batches and a buffered
// writer. Write copies the batch and queues it; when the queue stays full
// for longer than Options.MaxWait the batch is dropped and counted, so one
// slow output never holds up the modules for long. The buffer is flushed
// whenever the queue is empty, so `tail -f` sees events promptly, and on
// Close, which first writes everything queued.
//
// The host's own records (events lost, a plugin restarted) are sdk.Events
// of kind KindGap or KindNotice, built with Gap and Notice.
package output
