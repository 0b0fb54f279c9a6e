// Package policy decides which peer addresses a TURN server may relay to.
//
// A TURN relay (RFC 8656, https://www.rfc-editor.org/rfc/rfc8656; see its
// Section 21, Security Considerations) must not become a way into the
// server's own network: loopback, private and link-local ranges, the
// server's own ports, and the IPv6 forms that embed such an IPv4 address.
// RFC 8656 leaves that policy to the server; this package is it. It
// is deny by default: every special-purpose range of the IANA registries
// (RFC 6890) that is not globally reachable is refused, with a reason that
// names the range and its RFC, unless the configuration allows it explicitly.
//
// # Canonicalisation
//
// A peer address is reduced to the addresses it really reaches before it is
// judged:
//
//   - IPv4-mapped ::ffff:a.b.c.d (RFC 4291, Section 2.5.5.2) is the IPv4
//     address a.b.c.d: a dual-stack socket sends it over IPv4. It is judged
//     exactly as a.b.c.d, and only IPv4 Allow/Deny prefixes apply to it.
//   - IPv4-compatible ::a.b.c.d (deprecated, RFC 4291 Section 2.5.5.1) is
//     denied outright as ::/96, and a.b.c.d is judged as well.
//   - 6to4 2002:AABB:CCDD::/48 (RFC 3056) is judged by the IPv4 AA.BB.CC.DD.
//   - Teredo 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC (RFC 4380, Section 4) is
//     judged by both the server IPv4 S and the client IPv4 ^C (the client
//     address and port are stored bit-inverted); it is denied if either is.
//     Teredo is checked before the 2001::/23 denial that contains it, so a
//     Teredo address is judged by what it embeds, not by 2001::/23.
//   - NAT64 64:ff9b::/96 (RFC 6052) is judged by its last 32 bits.
//   - The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) has no fixed
//     embedding position, so it is denied outright.
//
// An IPv6 zone is ignored. Network-specific NAT64 prefixes (RFC 6052
// Section 2.2) and ISATAP interface identifiers cannot be recognised from the
// address alone and are judged as ordinary IPv6 addresses.
//
// # Precedence
//
// The first rule that matches decides:
//
//  1. An invalid address or port 0 is denied.
//  2. The server's own addresses (SetOwn, AddOwn) are denied, compared with
//     the peer and with every IPv4 address it embeds. Nothing overrides this.
//  3. Config.Deny denies a peer when a prefix covers the address as written
//     or any IPv4 address it embeds.
//  4. Each judged address (the canonical address, and each embedded IPv4) is
//     denied when it is in a built-in range, unless a Config.Allow prefix
//     covers that same address. An Allow of 127.0.0.0/8 therefore allows
//     127.0.0.1 and ::ffff:127.0.0.1 and 2002:7f00:1:: (6to4 of 127.0.0.1), but
//     an Allow of 2002::/16 does not clear a 6to4 address whose embedded
//     IPv4 is denied.
//  5. Everything else is allowed.
//
// Everything outside the IPv6 global unicast space 2000::/3 (RFC 4291,
// Section 2.4), other than the embedding forms above, is denied as well.
//
// # Own addresses
//
// The server's own listener and relay transport addresses are denied by
// exact address and port. A wildcard own address (0.0.0.0:3478 or
// [::]:3478) denies that port on every local address: the loopback ranges,
// the unspecified address, and the local interface addresses, which come
// from Config.LocalAddrs or SetLocalAddrs, or else from net.InterfaceAddrs
// at the time SetOwn or AddOwn receives the wildcard. A [::] wildcard covers
// IPv4 peers too, since a dual-stack socket receives them. Remote hosts
// using the same port are not affected. A Teredo server address is not
// compared with the own addresses: the relay never sends to it on a known
// port.
//
// The per-peer check (Allowed) takes no lock and allocates nothing.
package policy
