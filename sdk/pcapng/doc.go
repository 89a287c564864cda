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
// went by; so the Writer holds packets back for Delay (bounded by
// MaxHeld bytes) and writes any secrets that arrive meanwhile first. A
// packet forced out early by the bound is counted in Stats.EarlyPackets.
package pcapng
