// Package peer connects two icebreaker peers that share one wormhole code:
// it exchanges ICE credentials and trickled candidates (RFC 8445, RFC 8838)
// as sealed messages of a magic-wormhole mailbox (package wormhole), runs
// QUIC (RFC 9000, through github.com/quic-go/quic-go) over the ICE
// connection, authenticates the QUIC handshake by certificate fingerprints
// sent in the mailbox, and carries file transfers over QUIC streams.
//
// # Capability
//
// Each side says in its wormhole app_versions (client-protocol.md, the
// "version" phase) that it can do ICE, under the key AppVersionKey. Plain
// magic-wormhole clients ignore unknown keys. Only when both sides carry
// the key do they exchange the messages below; otherwise the application
// falls back to magic-wormhole's own protocols.
//
// # Signalling (sealed numbered mailbox phases)
//
//	{"ice-hello":{"ufrag":U,"pwd":P,"fingerprint":"sha-256 AB:CD:..","alpn":A}}
//	{"ice-candidate":"candidate:..."}           one per trickled candidate (RFC 8839, Section 5.1)
//	{"ice-candidates-done":true}                end-of-candidates (RFC 8838, Section 13)
//	{"ice-error":"text"}                        the side gives up
//
// Each side sends its hello first, then its candidates as Gather finds them.
// The messages are sealed with the SPAKE2 key, so the fingerprints are as
// authentic as the code: the WebRTC model (RFC 8827, Section 6.5) with the
// mailbox in the place of the signalling channel; no CA, no TOFU.
//
// # Roles
//
// The Dialer (the side that sends a file, or allocated the code) is the ICE
// controlling agent (RFC 8445, Section 6.1.1) and the QUIC client; the
// Acceptor is the controlled agent and the QUIC server. Both present an
// ephemeral self-signed certificate; each checks the other's against the
// SHA-256 fingerprint from the peer's hello. The ALPN is ALPN.
//
// # QUIC over ICE
//
// The ICE Conn (ice.Conn, a net.Conn) becomes a net.PacketConn whose peer
// address never changes (packetConn), so a switch of the selected pair (a
// relay to a direct pair, an ICE restart) is invisible to QUIC. QUIC shares
// the ICE sockets with STUN: the agent's read loop sends packets whose
// first byte is 0-3 to STUN and the rest to the Conn (RFC 7983, Section 7;
// quic-go does not grease the fixed bit, RFC 9287, so every QUIC packet
// starts with 0x40-0xff). quic-go sees no *net.UDPConn, so it uses neither
// GSO nor ECN nor the DF bit, and cannot run path-MTU discovery: packets
// are a fixed 1200 bytes (PacketSize), which with 4 bytes of TURN
// ChannelData fits IPv6's 1280-byte minimum MTU. The batching that quic-go
// would do on its own socket happens under the ICE Conn instead: host
// sockets and the TURN client queue what QUIC writes and send it with
// sendmmsg and UDP GSO, and host sockets are read with recvmmsg. See
// quicConfig for the timeouts and the flow-control windows.
//
// # Transfers
//
// Each transfer is one bidirectional QUIC stream opened by the sender:
// an offer, the receiver's answer, the data, the sender's SHA-256 and the
// receiver's verdict, as length-prefixed JSON control frames around raw
// data (transfer.go, frame.go). Three shapes of data:
//
//   - a file of known size: its bytes. When the receiver holds a part of
//     a file of the same name from an earlier session (codes are
//     single-use, so a resume is a new session), its answer carries the
//     part's length and SHA-256; the sender checks its own prefix against
//     that hash and continues from there, or starts over at 0, and says
//     which ("start"). The final hash covers the whole file.
//   - a stream of unknown size (standard input): length-prefixed chunks
//     ended by an empty one (chunk.go).
//   - a directory: the offer carries the totals (bytes, files,
//     directories); then a sequence of entries, each a frame with a
//     relative path, permission bits and size followed by the file's
//     bytes, parents before children, empty directories included, with
//     no archive built on either disk (dir.go). Symbolic links and special
//     files are not sent. The receiver writes through an os.Root, refuses
//     paths that are not local (ValidPath), never opens an existing name,
//     and stops at the offered totals.
//
// Modes carry permission bits only: never setuid, setgid or sticky.
package peer
