// Package stunclient runs STUN client transactions as RFC 8489
// (https://www.rfc-editor.org/rfc/rfc8489) specifies them: retransmission
// over UDP (Section 6.2.1), a single send with a 39.5 s timeout over TCP
// and TLS (Section 6.2.2), matching responses by transaction ID (Section
// 6.3), and the long-term credential exchange of Section 9.2 (401, then a
// retry with REALM, NONCE and integrity; 438, then a fresh nonce). A 300
// response with ALTERNATE-SERVER is followed once (Section 10).
//
// # Layers
//
// Transaction is the sans-IO core: one transaction's timers and response
// checks, driven by the caller's clock (Next, Receive). It owns no socket
// and no goroutine, so other protocols' clients (the RFC 5780 prober, ICE
// checks) can run it on their own sockets.
//
// Client is the driver: it owns a socket (New for UDP, NewStream for TCP
// and TLS) or borrows one (NewShared, fed through HandlePacket), keeps the
// table of outstanding transactions, and runs the credential and
// redirection logic around them in Do. Binding is Do for the common case.
//
// # Response processing
//
// A response is matched to its transaction by transaction ID only, not by
// source address (an RFC 5780 server answers from other addresses). Then,
// in order:
//   - a message that is not a success or error response with the magic
//     cookie, of the request's method, is dropped (Section 6.3);
//   - a wrong FINGERPRINT drops the message (Section 7.3);
//   - a response to a request that carried integrity must carry a valid
//     MESSAGE-INTEGRITY(-SHA256), except 401 and 438; over UDP a failing
//     one is dropped and retransmission goes on, and if nothing better
//     arrives the transaction fails with stun.ErrIntegrity rather than a
//     timeout; over TCP/TLS it fails at once (Section 9.2.5);
//   - a response whose nonce cookie announces PASSWORD-ALGORITHMS but
//     which has none is dropped, and such a 401 or 438 is not retried
//     (ErrBidDown) (Sections 9.2.1, 9.2.5);
//   - an error response without a valid ERROR-CODE, or any response with
//     a comprehension-required attribute the client does not understand,
//     fails the transaction: RFC 8489, Sections 6.3.3 and 6.3.4 say the
//     transaction "is considered to have failed", so it is an error
//     (ErrUnknownAttribute), not a silent drop. Config.Comprehends extends
//     the known set for a usage such as TURN.
//
// Dropped messages and late or duplicate responses are counted (Stats)
// and never end a transaction.
//
// # Long-term credentials
//
// The first request to a server carries no credentials (Section 9.2.3.1).
// A 401 with REALM and NONCE is retried with USERNAME (or USERHASH when
// the nonce cookie asks for anonymity), REALM, NONCE and integrity. If
// the 401 lists PASSWORD-ALGORITHMS, the retry echoes them, names the
// first one of the server's list that the client supports (MD5 or
// SHA-256) in PASSWORD-ALGORITHM, and is protected by
// MESSAGE-INTEGRITY-SHA256 only; otherwise MESSAGE-INTEGRITY with the MD5
// key (Section 9.2.5). A 401 to a request that carried credentials for the
// same realm is final. A 438 is retried with its new nonce. After a
// success the realm, nonce and key are cached per server and sent with
// the next request at once (Section 9.2.3.2).
package stunclient
