// Package pcapng writes captured packets as pcapng that Wireshark opens
// decrypted with no separate key file: Enhanced Packet Blocks (with a
// comment naming the process, where known) and Decryption Secrets Blocks
// carrying TLS key log lines, each written before the first packet it
// decrypts.
//
// The section header, interface and packet blocks come from
// github.com/gopacket/gopacket/pcapgo (maintained, and it writes packet
// comments); it has no Decryption Secrets Block (pcapng block type 0xA,
// secrets type "TLSK"), which this package writes between its blocks.
//
// Keys are only known once a handshake completes, after its first packets
// went by; so a packet whose secrets are not written yet (Options.Annotate
// says which are) waits, for Delay at most (bounded by MaxHeld bytes) or
// until Release, and secrets that arrive meanwhile are written first. A
// packet forced out early by the bound is counted in Stats.EarlyPackets.
// The packets of a connection whose keys are written go to the file at
// once, without a copy: at full load nearly every packet does. Packets of
// one flow (Annotation.Flow, e.g. a TCP connection) keep their order: one
// is never written before an earlier one of its flow that waits.
package pcapng
