// Package outputv1 holds the generated type of the records ecaphost writes
// to an output in "protobuf" format: a stream of length-delimited Event
// messages (see output.proto). Consumers read it with
// google.golang.org/protobuf/encoding/protodelim.
package outputv1
