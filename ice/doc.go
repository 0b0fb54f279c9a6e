// Package ice is the first part of icebreaker's ICE agent: the data model and
// the pure, sans-IO rules of Interactive Connectivity Establishment, RFC 8445
// (https://www.rfc-editor.org/rfc/rfc8445), and the SDP candidate grammar of
// RFC 8839 (https://www.rfc-editor.org/rfc/rfc8839).
//
// What is here:
//   - Candidate and its "a=candidate" grammar, parse and marshal
//     (RFC 8839, Section 5.1), with the TCP candidate types of RFC 6544,
//     Section 4.5, and FQDN (mDNS ".local") connection addresses.
//   - Candidate priorities (RFC 8445, Section 5.1.2), the recommended type
//     preferences (Section 5.1.2.2), local preferences across interfaces and
//     address families (Section 5.1.2.1 with the guidance of RFC 8421,
//     Section 4), and the TCP local preference of RFC 6544, Section 4.2.
//   - Foundations (RFC 8445, Section 5.1.1.3) and the elimination of
//     redundant candidates (Section 5.1.3).
//   - Candidate pairs, their priority (Section 6.1.2.3) and states
//     (Section 6.1.2.6), and the check list: forming (Section 6.1.2.2),
//     ordering (Section 6.1.2.3), pruning (Section 6.1.2.4), limiting
//     (Section 6.1.2.5), the initial unfreezing by foundation
//     (Section 6.1.2.6), and unfreezing on success (Section 7.2.5.3.3).
//   - Connectivity checks (RFC 8445, Section 7) in the Checker: the Binding
//     requests with USERNAME, PRIORITY (Section 7.1.1), ICE-CONTROLLING or
//     ICE-CONTROLLED with the tie-breaker, USE-CANDIDATE, and short-term
//     MESSAGE-INTEGRITY and FINGERPRINT (RFC 8489, Section 9.1); answering
//     checks (Section 7.3) with role-conflict resolution (Section 7.3.1.1),
//     peer-reflexive remote candidates (Section 7.3.1.3) and triggered checks
//     (Section 7.3.1.4); processing responses (Section 7.2.5) with the
//     symmetry check, 487 handling, peer-reflexive local candidates and the
//     valid list; Ta pacing (Section 6.1.4.2) and retransmissions with the
//     RTO of Section 14.3; regular nomination (Section 8.1) with a relay
//     wait, and the upgrade from a relayed to a direct pair.
//
// Nothing in this package opens a socket, starts a goroutine, or reads the
// clock: the Checker takes packets and the time through Handle and Next, and
// a driver that owns the sockets sends what Next returns. The next steps of
// the agent build on it: keepalives and consent freshness (RFC 7675),
// candidate gathering and trickle (RFC 8838), several components and data
// streams, and the selected path as a net.Conn.
package ice
