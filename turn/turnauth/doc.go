// Package turnauth is the server side of the STUN long-term credential
// mechanism as TURN uses it: RFC 8489, Section 9.2
// (https://www.rfc-editor.org/rfc/rfc8489) with the TURN rules of RFC 8656,
// Sections 5 and 7.2 (https://www.rfc-editor.org/rfc/rfc8656).
//
// An Authenticator checks one request at a time (Authenticate) and, when the
// request does not pass, tells the caller which error response to send
// (Challenge) and writes its attributes (AppendChallenge). It implements:
//
//   - the checks of RFC 8489, Section 9.2.4, in the order given there:
//     no MESSAGE-INTEGRITY(-SHA256) gives 401 with REALM and NONCE; a
//     missing USERNAME/USERHASH, REALM or NONCE gives 400; the
//     PASSWORD-ALGORITHM(S) bid-down check; an unknown user or a bad
//     integrity value gives 401; a stale nonce gives 438;
//   - the MD5 and SHA-256 password algorithms (Section 18.5) with
//     PASSWORD-ALGORITHMS in challenges and the "Password algorithms" bit of
//     the nonce cookie (Section 9.2);
//   - USERHASH (Section 14.4) when the key lookup can resolve it
//     (UserhashLookup), announced with the "Username anonymity" bit;
//   - stateless nonces: an HMAC over the issue time, the validity and the
//     client's transport address (IP address, port and transport), so that
//     a restarted server, or another node with the same NonceSecret,
//     accepts them, and a request captured on one 5-tuple cannot be
//     replayed from another; the issue time is reported
//     (Result.NonceIssued) so that a server can refuse a nonce older than
//     an event of its own;
//   - TURN REST API ephemeral credentials (draft-uberti-behave-turn-rest,
//     coturn's use-auth-secret): username "EXPIRY:user", password
//     base64(HMAC-SHA1(secret, username)), verified against every configured
//     secret so that secrets can be rotated. The HMAC is checked before the
//     expiry, and the expiry only on Allocate.
//
// # Old clients and the password algorithm bid-down rule
//
// RFC 5389 clients (coturn's turnutils_uclient, pion, libwebrtc) know neither
// the nonce cookie nor PASSWORD-ALGORITHMS: they echo the nonce and sign with
// an MD5 key. RFC 8489, Section 9.2.4 already provides for them: when the
// nonce carries the "Password algorithms" bit and the request holds neither
// PASSWORD-ALGORITHM nor PASSWORD-ALGORITHMS, the request is processed as if
// PASSWORD-ALGORITHM were MD5. Only a request that carries one of the two
// attributes must carry both, with PASSWORD-ALGORITHMS equal to the list the
// server offered, or it gets 400. So offering SHA-256 (the default) costs
// old clients nothing; an operator who removes MD5 from Config.Algorithms
// locks them out on purpose.
//
// The password algorithm (how the key is derived) and the integrity
// attribute (MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256) are independent,
// as in RFC 8489: any combination is accepted, and the response is signed
// with the integrity attribute the request used (Result.AppendSignature).
package turnauth
