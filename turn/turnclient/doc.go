// Package turnclient is the client side of TURN, RFC 8656
// (https://www.rfc-editor.org/rfc/rfc8656): Allocate creates an allocation
// on any TURN server and returns it as a net.PacketConn (a *Relay).
//
// Implemented:
//
//   - Allocate over UDP, TCP or TLS (Sections 3.1 and 7.1), with the
//     long-term credentials of RFC 8489, Section 9.2 (401 and 438 are
//     answered transparently by package stunclient) or TURN REST API
//     credentials minted from a shared secret (turn.RESTCredentials), and
//     one 300 ALTERNATE-SERVER redirection (RFC 8489, Section 10), and
//     one retry from a new local port after 437 Allocation Mismatch, which
//     a stale allocation on a reused client port causes (Section 7.3);
//
//   - IPv4, IPv6 and dual allocations (REQUESTED-ADDRESS-FAMILY and
//     ADDITIONAL-ADDRESS-FAMILY, Sections 7.1, 18.6 and 18.11);
//
//   - Refresh before the allocation expires (Section 8): a minute before,
//     or half way for lifetimes under two minutes; Refresh with LIFETIME 0
//     on Close (Section 7.3);
//
//   - CreatePermission before the first datagram to a new peer IP, and
//     every 4 minutes for peers in use (Section 9);
//
//   - Send and Data indications (Section 10); ChannelBind after a peer has
//     been sent Config.BindAfter datagrams, refreshed every 9 minutes while
//     in use, then ChannelData, padded over TCP and TLS (Sections 11, 12).
//
//   - TCP allocations of RFC 6062 (https://www.rfc-editor.org/rfc/rfc6062):
//     AllocateTCP returns a *TCPRelay; Dial sends Connect (Section 4.3)
//     and Accept takes ConnectionAttempt indications (Section 4.5), and
//     both bind a new data connection with ConnectionBind (Section 4.4),
//     sent as a transaction of the control connection's STUN client so
//     that it carries the control connection's realm, nonce and key.
//
// REST credentials are minted once, by Allocate: every request of an
// allocation must carry the username that created it (RFC 8656, Section
// 5), and a REST username contains its expiry, so it cannot be renewed.
// coturn checks the expiry only when the allocation is created;
// icebreaker's server checks it on every request, so there a Relay cannot
// be refreshed past Config.RESTTTL and ends with ErrAllocationLost.
//
// Not implemented: EVEN-PORT and RESERVATION-TOKEN, DONT-FRAGMENT, and
// the ICMP attribute.
//
// # Structure
//
// The protocol state (allocation lifetime, permissions, channel numbers
// and bindings, and their timers) is a sans-IO core driven by the caller's
// clock and tested without sockets. The Relay drives it with two
// goroutines: a reader, which hands STUN responses to a shared
// stunclient.Client and Data indications and ChannelData to ReadFrom, and
// a refresher, which sends the requests the core asks for when they are
// due. The reader counts and drops malformed and unexpected packets
// (Stats) and never stops for them; only the end of the socket stops it.
package turnclient
