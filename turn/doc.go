// Package turn implements the wire pieces of TURN, RFC 8656
// (https://www.rfc-editor.org/rfc/rfc8656), that package stun does not:
//
//   - ChannelData messages (RFC 8656, Section 12): the channel number range
//     (Section 12) and, in one place for servers and clients
//     (IsChannelDataByte), which first bytes are ChannelData by the rule of
//     RFC 7983 (as updated by RFC 9443), with the loose range of RFC 5766 on
//     request; the message format (Section 12.4), datagram
//     parsing with optional padding (Sections 12.5 and 12.6) and stream
//     framing with mandatory padding to a multiple of four bytes over TCP
//     and TLS (Section 12.5), in the shape of stun.FrameFunc so that the
//     STUN layer's stream framers carry ChannelData without knowing TURN;
//   - the TURN attribute values of RFC 8656, Section 18: CHANNEL-NUMBER
//     (18.1), LIFETIME (18.2), REQUESTED-ADDRESS-FAMILY (18.6), EVEN-PORT
//     (18.7), REQUESTED-TRANSPORT (18.8), RESERVATION-TOKEN (18.10),
//     ADDITIONAL-ADDRESS-FAMILY (18.11), ADDRESS-ERROR-CODE (18.12) and ICMP
//     (18.13), plus CONNECTION-ID of RFC 6062, Section 6.2
//     (https://www.rfc-editor.org/rfc/rfc6062);
//   - the TURN part of the requests and indications a client sends
//     (request.go): Allocate (Section 7.1, and RFC 6062, Section 5.1),
//     Refresh and deletion (Section 8.1), CreatePermission (Section 9.1),
//     ChannelBind (Section 11.1) and whole Send indications (Section
//     10.1), the one generator that turnclient and the load tools under
//     bench/ share;
//   - address families for IPv6 allocations, first defined by RFC 6156
//     (https://www.rfc-editor.org/rfc/rfc6156) and now part of RFC 8656,
//     which supersedes it (Sections 3.2, 7.2 and 18.6);
//   - ephemeral credentials of the TURN REST API,
//     draft-uberti-behave-turn-rest-00, Section 2.2
//     (https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00),
//     as coturn's --use-auth-secret implements them.
//
// The methods (Allocate, Refresh, Send, Data, CreatePermission, ChannelBind
// and the RFC 6062 Connect, ConnectionBind and ConnectionAttempt), the
// attribute numbers and the TURN error codes live in package stun. So do the
// codecs this package does not repeat:
//
//	stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)    // 18.3
//	stun.AppendXORAddress(b, stun.AttrXORRelayedAddress, relay, id) // 18.5
//	stun.AppendAttr(b, stun.AttrData, payload)                      // 18.4
//	stun.AppendAttr(b, stun.AttrDontFragment, nil)                  // 18.9, empty value
//
// The package owns no sockets and no goroutines, and all of its functions
// are safe for concurrent use. Parsing reads in place: returned slices refer
// to the caller's buffer. Building appends into the caller's buffer; the
// attribute Append functions follow package stun's convention and keep the
// STUN header's length field up to date when the message starts at b[0].
// The per-packet functions (IsChannelData, ParseChannelData, FrameChannelData,
// ChannelDataFrameLength, AppendChannelData) allocate nothing.
//
// Parse functions return errors that wrap stun.ErrMalformed (a value that
// breaks the RFC's format: answer 400) or stun.ErrTruncated (a ChannelData
// message shorter than its header says), ErrNotChannelData, or
// ErrUnsupportedFamily (answer 440).
package turn
