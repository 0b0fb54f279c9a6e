// Package ice is icebreaker's ICE agent: the data model and the pure,
// sans-IO rules of Interactive Connectivity Establishment, RFC 8445
// (https://www.rfc-editor.org/rfc/rfc8445), the SDP candidate grammar of
// RFC 8839 (https://www.rfc-editor.org/rfc/rfc8839), and the Agent that
// drives them over real sockets.
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
// The Checker opens no socket, starts no goroutine and reads no clock: it
// takes packets and the time through Handle and Next. The Agent is the thin
// driver that owns the sockets (agent.go, loop.go, socks.go, gather.go,
// conn.go):
//   - gathering of host candidates, one UDP socket per usable address,
//     IPv4 and IPv6, loopback and link-local only when enabled (RFC 8445,
//     Section 5.1.1.1), and of server-reflexive candidates by a STUN
//     Binding sent on the host socket itself (Section 5.1.1.2), redundant
//     ones pruned (Section 5.1.3), each emitted as it is found and then
//     end-of-candidates (trickle, RFC 8838);
//   - relayed candidates (RFC 8445, Section 5.1.1.2) through package
//     turnclient (RFC 8656), over UDP, TCP or TLS to the server, the base
//     being the relayed address itself and the related address the mapped
//     one; a relay is a base like a host socket, with a read goroutine and
//     a write goroutine (so that the loop never waits for a permission),
//     and its permissions for the remote candidates are created when the
//     checks start (RFC 8656, Section 9); RelayOnly gathers nothing else;
//   - consent freshness (RFC 7675, Section 5.1): once connected, a
//     consent check (an authenticated Binding request on the selected
//     pair) every ConsentInterval, randomized to 0.8-1.2 times it; when
//     none is answered for ConsentTimeout, the Agent stops sending and the
//     Conn's Read and Write return ErrConsentLost;
//   - a relayed backup: while a direct pair is selected, the best valid
//     relayed pair is kept (the ordinary checks go on until one succeeds,
//     past the end of RFC 8445, Section 8.3) and gets a consent check at
//     each consent interval too (RFC 7675 consent may run on any pair),
//     which keeps its TURN permission and channel in use and so refreshed;
//     the relay's allocation lives while the Agent does. When the selected
//     pair goes stale (DisconnectedAfter) and the backup answered a check
//     sent since the selected pair's last answer, the Agent selects the
//     backup, stays Connected, and calls OnSelectedPairChange. RFC 8445,
//     Section 8.1.1 read strictly changes the selected pair only by an ICE
//     restart; like WebRTC implementations, each side here switches on its
//     own instead (the Conn reads from any of the peer's candidates, so
//     data flows once either has switched), and the controlling agent goes
//     on nominating the direct pair, so both move back when it answers;
//   - direct pairs checked again: while a relayed pair is selected and
//     every direct pair has failed, each agent puts its failed direct
//     pairs back to Waiting after Recheck (15 s) and again after each
//     round that fails, so that a direct path that opens later (a
//     firewall rule removed, a failed-over path back) is found and the
//     relay left for it; RFC 8445 keeps failed pairs failed (Section
//     7.2.5.4), a deliberate deviation;
//   - random credentials (RFC 8445, Section 5.3);
//   - one read goroutine per socket that demultiplexes by the first byte
//     (RFC 7983, Section 7): STUN to the Checker, or to the STUN client
//     when the Checker does not know the transaction, the rest to the
//     application;
//   - one loop goroutine that owns the Checker and its timer, and sends
//     keepalives on the selected pair (RFC 8445, Section 11) and consent
//     checks when a sans-IO liveness (like the Checker: Next(now), no
//     clock of its own) says they are due;
//   - the selected path as a net.Conn (Conn), which sends on the selected
//     pair (RFC 8445, Section 12.1) and reads data from any of the peer's
//     candidates (Section 12.2);
//   - remote candidates trickled after Dial or Accept (RFC 8838, Section
//     11.4) with AgentConfig.RemoteTrickle, AddRemoteCandidate and
//     RemoteCandidatesDone: new pairs join the running check list, and
//     the checks do not fail before the peer's end-of-candidates
//     (Section 8.2);
//   - ICE restart (RFC 8445, Section 9): RestartCredentials and Restart
//     run new checks with new credentials while the Conn keeps the old
//     pair (and the old session its consent), then follows the new
//     selection; Regather first gathers new candidates on new sockets and
//     allocations, and the losing generation is closed afterwards;
//   - a lite mode (RFC 8445, Section 2.5): host candidates only, always
//     controlled, answering the full peer's checks and selecting the pair
//     it nominates (Section 7.3.1.5);
//   - the connection state (new, checking, connected, disconnected,
//     failed, closed) through Agent.State and AgentConfig.OnStateChange.
//
// Not yet here: several components and TCP candidates in the Agent.
package ice
