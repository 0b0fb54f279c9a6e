// Package stun implements the STUN wire format of RFC 8489
// (https://www.rfc-editor.org/rfc/rfc8489): the message header (Section 5),
// method and class encoding, the attributes of Section 14, MESSAGE-INTEGRITY,
// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (Sections 14.5-14.7), long-term and
// short-term credential keys (Section 9), the nonce security-feature cookie
// (Section 9.2), and the first-byte demultiplexing rule of RFC 7983: STUN,
// or something else that another protocol frames (StreamFrame, FrameFunc).
//
// The package owns no sockets and no goroutines. Parsing reads in place: a
// Message refers to the caller's buffer and is valid only as long as that
// buffer is. Building appends into a caller's buffer:
//
//	b := stun.AppendHeader(buf[:0], stun.BindingSuccess, m.TransactionID)
//	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, m.TransactionID)
//	b = stun.AppendFingerprint(b)
//
// Every Append function keeps the header's length field up to date, so the
// bytes are a complete message after each call. A message built this way must
// start at b[0].
//
// The attributes that TURN (RFC 8656), RFC 5780 and ICE (RFC 8445) define live
// in their own packages, or are carried as raw attributes here; this package
// knows their numbers only so it can tell comprehension-required from
// optional attributes.
package stun
