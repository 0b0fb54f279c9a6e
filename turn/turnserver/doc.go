// Package turnserver is a TURN server: the server side of RFC 8656
// (https://www.rfc-editor.org/rfc/rfc8656), including the IPv6 and dual
// allocations that RFC 8656 took over from RFC 6156, and TCP allocations
// of RFC 6062 (https://www.rfc-editor.org/rfc/rfc6062). It plugs into
// stunserver as its Handler, so the same UDP, TCP and TLS listeners serve
// STUN Binding and TURN, and it relays over sockets of its own.
//
// Implemented:
//
//   - Allocate (Section 7.2) with REQUESTED-TRANSPORT UDP, LIFETIME,
//     DONT-FRAGMENT (DF set on the relay socket on Linux; elsewhere 420),
//     EVEN-PORT with the R bit and RESERVATION-TOKEN, REQUESTED-ADDRESS-FAMILY
//     and ADDITIONAL-ADDRESS-FAMILY (dual allocations, ADDRESS-ERROR-CODE
//     for an IPv6 half that cannot be served), quotas (486 per user, 508 for
//     the server or when no port is free), and the same success response to
//     a retransmitted Allocate.
//   - Refresh (Section 8.2), LIFETIME 0 deleting, REQUESTED-ADDRESS-FAMILY
//     naming one half of a dual allocation (443 for a half it lacks).
//   - CreatePermission (Section 10.2) with several XOR-PEER-ADDRESS, all or
//     none; ChannelBind (Section 12.2) with its channel/peer rules.
//   - Send and Data indications (Section 11) and ChannelData (Section 12),
//     padded on TCP and TLS and not on UDP.
//   - 401/438 through the Authenticator, 441 for a request whose username
//     is not the allocation's, 437 for a 5-tuple without allocation, 403
//     from the PeerPolicy on CreatePermission, ChannelBind and every Send
//     indication, 420 for unknown comprehension-required attributes.
//   - Allocations keyed by the 5-tuple; a TCP or TLS allocation ends with
//     its connection (Section 3.1).
//   - Abuse bounds (Section 21 leaves them to the server): permissions per
//     allocation (Quotas.PermissionsPerAllocation, 508, all or none);
//     EVEN-PORT reservations counted against the user's allocations until
//     redeemed or expired; RFC 6062 Connects in progress per allocation
//     (508) and per user (486) and peer connections per TCP allocation; a
//     descriptor budget over every socket the server holds (508); error
//     answers to unauthenticated requests limited per source address
//     (Config.ErrorLimiter), the first 401 without reason phrase, and
//     without FINGERPRINT when the request had none. Refusals and
//     authentication failures are counted in Stats and logged at info at
//     most once per source and reason per interval (internal/ratelog).
//   - Nonces bound to the client's transport address (turnauth), and
//     refused (438) when issued before the last deletion of an allocation
//     on the request's 5-tuple: a replayed Refresh with LIFETIME 0 cannot
//     delete the client's next allocation there. It costs nothing per
//     request but a hash and an atomic load, no state per client (a fixed
//     table of 16384 deletion times indexed by a keyed hash of the
//     5-tuple, where a collision can only refuse), and one extra 438 to a
//     client that allocates again on the same 5-tuple within the nonce
//     lifetime. An allocation keeps the deletion time the table held
//     when it was made and is judged by that alone, so a collision can
//     refuse an Allocate but no request of an existing allocation. Remembering transaction IDs instead would cost memory per
//     request for the nonce lifetime and a cached answer each. A
//     ConnectionBind (on a new connection) may carry the nonce of its
//     allocation's control connection, from the same IP address.
//   - RFC 6062: Allocate with REQUESTED-TRANSPORT TCP over TCP or TLS
//     (400 over UDP, and with DONT-FRAGMENT, EVEN-PORT, RESERVATION-TOKEN),
//     Connect (answered when the connection to the peer succeeds, 447 when
//     it fails within 30 s, 446 for a peer already connected), incoming
//     peer connections (closed at once without a permission, otherwise a
//     ConnectionAttempt), ConnectionBind on a new client connection (400
//     for an unknown or spent CONNECTION-ID, 441 for another user), the 30 s
//     ConnectionBind window, and data connections spliced byte for byte
//     until either side closes or the allocation goes.
//
// Operations (reload.go, admin.go): a running Server's authenticator,
// peer policy and quotas can be swapped without touching an allocation
// (SetAuth, SetPolicy, which also removes the permissions and channels
// the new policy denies, as Section 21.1 allows, and SetQuotas); the
// allocations of users that are gone end at their next Refresh
// (RevokeUsers); Sessions lists the allocations and KillSession and
// KillUser end them; Drain refuses new allocations with 300 and
// ALTERNATE-SERVER (RFC 8489, Section 14.15) or 508 while the existing
// ones go on.
//
// Deviations, each for a reason:
//
//   - Expiry runs once a second (a janitor goroutine), so allocations,
//     permissions, channels and reservations outlive their time by up to a
//     second; the packet paths then need no clock.
//   - Both halves of a dual allocation share one time-to-expiry: a Refresh
//     naming one family refreshes both (LIFETIME 0 with a family deletes
//     only that half).
//   - ChannelData from the client needs the peer's permission as well as
//     the channel, both ways, so a channel cannot outlive the permission
//     check of Section 9.
//   - A failed send towards a peer (no route, EPERM, ...) drops that
//     packet and is counted; the allocation stays (coturn deletes it).
//   - DONT-FRAGMENT in a Send indication is honoured only when the
//     Allocate asked for it (the socket has DF then); otherwise the
//     datagram goes out without DF.
//   - Data indications carry no FINGERPRINT, and no ICMP attribute is sent.
//   - The relayed addresses are not denied as the server's own: two
//     clients of the server reach each other through their relays, as ICE
//     needs when both peers use TURN. Only the listener addresses (given to
//     the PeerPolicy by whoever wires the server) are.
//   - Quotas count REST credentials ("expiry:user") against the user part.
//   - REST credentials are checked for expiry at Allocate only (turnauth):
//     an allocation made while they were valid lives by its lifetime and
//     refreshes, as with coturn and browsers.
//   - Bandwidth quotas apply to UDP relaying, not to RFC 6062 data
//     connections, whose bytes are counted only.
//
// # Performance
//
// The relaying paths allocate nothing and take only read locks in the
// common case: allocations are found in a 64-way sharded table under a
// read lock, an allocation's permissions and channels are an immutable
// snapshot behind an atomic pointer (scanned below 9 entries, looked up in
// map indexes above, so the check costs about the same at the caps), and
// counters are per allocation and direction. Peer datagrams are read into
// a slot of a poller's arena with room in
// front, and the Data indication or ChannelData header is written in
// place. On Linux relay sockets have no goroutine of their own: one
// internal/udpio Poller per CPU owns an epoll instance with its share of
// the sockets, parks on Go's netpoller until it has events, and drains
// each ready socket with recvfrom into an arena; the relay handler builds
// each message to the client in place, and the messages that all the
// relays of one wakeup produced for UDP clients go out together, one
// sendmmsg per listening socket. Both directions send with one
// sendmmsg per relay socket (or listening socket) and batch, and where
// the kernel has UDP GSO (Linux 4.18) a run of datagrams to one address
// with one size goes out as one GSO datagram, which the kernel cuts back
// into the same datagrams (internal/udpio). An idle UDP allocation costs about 1 KB of Go heap and 2.4 KB of
// resident memory (TestMemoryPerAllocation; coturn needs 22.5 KB).
package turnserver
