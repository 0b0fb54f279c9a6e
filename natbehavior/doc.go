// Package natbehavior finds out how the NAT (or firewall) between this host
// and the internet behaves, with the NAT Behavior Discovery usage of STUN,
// RFC 5780 (https://www.rfc-editor.org/rfc/rfc5780), in the terms of RFC
// 4787 (https://www.rfc-editor.org/rfc/rfc4787):
//
//   - UDP connectivity and NAT presence: RFC 5780, Sections 4.2 and 4.3
//     (test I; no NAT when the mapped address is the local address);
//   - mapping behaviour: Section 4.3 (tests II and III: endpoint-independent,
//     address-dependent or address-and-port-dependent mapping);
//   - filtering behaviour: Section 4.4 (tests II and III with CHANGE-REQUEST:
//     endpoint-independent, address-dependent or address-and-port-dependent
//     filtering);
//   - hairpinning: Section 3.4 (a request sent from a second socket to the
//     mapped address of the first);
//   - binding lifetime: Section 4.6 (RESPONSE-PORT from a second socket after
//     the first has been idle for T).
//
// The attributes of Section 7 (CHANGE-REQUEST, RESPONSE-PORT, OTHER-ADDRESS,
// RESPONSE-ORIGIN) are encoded and decoded with package stun.
//
// The logic is a [Prober] that owns no socket and reads no clock: it says
// which request to send, from which of its local sockets and to which address
// ([Prober.Poll]), and it is told what arrived and when ([Prober.Receive]).
// Every probe has its own transaction ID and responses are matched to probes
// by that ID, so a late answer to one test is never taken as the answer to
// another. Requests are retransmitted on the schedule of RFC 8489, Section
// 6.2.1 ([stunclient.Retransmit]). [Discover] is the thin driver that
// resolves the server, owns the UDP sockets and runs a Prober to completion.
//
// Tests whose expected outcome may be silence (filtering tests II and III,
// hairpinning, the binding lifetime check) use a shorter schedule,
// [DefaultSilence] (2.75 s): waiting the full 39.5 s of RFC 8489 for an
// answer that a filtering NAT is meant to drop would make every run slow.
// Filtering tests II and III are sent in parallel from one fresh socket (RFC
// 5780, Section 4.5 allows combining tests; both go to the server's primary
// address, so neither opens the NAT for the other); the mapping tests use
// their own socket, so that their traffic to the alternate address cannot
// open the filter that the filtering tests measure (Section 4.4: "These
// tests are sensitive to prior state on the NAT").
package natbehavior
