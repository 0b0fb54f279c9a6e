// Package netx is the plumbing that icebreaker's connection types share
// at the boundary of package net: the TURN client's Relay (a
// net.PacketConn), the ICE Conn (a net.Conn), the STUN client and the NAT
// behaviour prober.
//
//   - Unmap, AddrPort and UDPAddr convert between net.Addr and
//     netip.AddrPort, once, at that boundary: inside, addresses are
//     netip.AddrPort with IPv4-mapped IPv6 addresses unmapped (RFC 4291,
//     Section 2.5.5.2), so that 192.0.2.1 and ::ffff:192.0.2.1 compare
//     equal.
//   - Deadline is the settable point in time behind SetReadDeadline and
//     SetWriteDeadline, a channel closed when it passes.
//   - OpError wraps an error in a *net.OpError as the standard library's
//     sockets do.
//
// The package is internal: its API serves icebreaker's packages and may
// change with them.
package netx
