// Package stunserver is a STUN Binding server: the server side of the
// Binding method of RFC 8489 (https://www.rfc-editor.org/rfc/rfc8489) over
// UDP, TCP and TLS (Sections 6.2 and 6.3), with the NAT Behavior Discovery
// usage of RFC 5780 (https://www.rfc-editor.org/rfc/rfc5780, Sections 6
// and 7) when it is given a second IP address, and answers to classic
// RFC 3489 (https://www.rfc-editor.org/rfc/rfc3489) clients.
//
// What a Binding request gets:
//
//   - A success response with XOR-MAPPED-ADDRESS (RFC 8489, Section 14.2),
//     SOFTWARE when Config.Software is set, and FINGERPRINT (Section 14.7).
//   - With RFC 5780 enabled (Config.AlternateIP), also MAPPED-ADDRESS,
//     RESPONSE-ORIGIN and, on UDP, OTHER-ADDRESS (RFC 5780, Section 6.1);
//     CHANGE-REQUEST moves the response to the socket Table 1 names,
//     RESPONSE-PORT redirects it, and PADDING pads it.
//   - A classic request (no magic cookie) gets the RFC 3489 answer:
//     MAPPED-ADDRESS, and with RFC 5780 enabled SOURCE-ADDRESS and
//     CHANGED-ADDRESS, echoing the 128-bit transaction ID; no
//     XOR-MAPPED-ADDRESS and no FINGERPRINT.
//   - 420 with UNKNOWN-ATTRIBUTES for unknown comprehension-required
//     attributes (RFC 8489, Section 6.3.1), 400 for malformed known
//     attributes and for methods other than Binding when no Handler is
//     configured.
//
// Packets that are not STUN, fail to parse, or carry a wrong FINGERPRINT
// are counted and dropped (RFC 8489, Section 6.3); so are indications and
// responses. Deliberate deviations are marked in the code; the main ones:
//
//   - A CHANGE-REQUEST with neither flag set is served even without an
//     alternate address (RFC 5780, Section 6 asks for 420): classic
//     clients such as Vovida's stun send one in every request.
//   - Over TCP and TLS, CHANGE-REQUEST with a flag set and RESPONSE-PORT
//     get 420, because a stream cannot be answered from another socket or
//     port (RFC 5780, Section 3: those tests apply only to UDP).
//   - PADDING in a response is as long as the request's PADDING, not the
//     outgoing MTU (RFC 5780, Section 6.1 says SHOULD): this keeps the
//     response from outgrowing the request and needs no per-packet MTU
//     lookup.
//   - The server holds no credentials: MESSAGE-INTEGRITY and friends are
//     understood (they never cause 420) but not checked, as for a public
//     STUN server (RFC 8489, Section 9).
//
// Every UDP address is served by Config.UDPSockets sockets sharing it with
// SO_REUSEPORT, each read by its own goroutine. On Linux each goroutine
// reads and answers up to 32 datagrams per recvmmsg/sendmmsg call, which
// BenchmarkUDPServer measures ahead of one datagram per call. The path from
// datagram to response allocates nothing and logs nothing.
//
// Config.Handler is the extension point for other STUN usages (a TURN
// server, RFC 8656): it receives the requests and indications of other
// methods, and, if it implements OtherHandler, the messages that are not
// STUN by their first byte (RFC 7983, Section 7), which it frames itself
// over TCP and TLS (a TURN server takes ChannelData so; this package knows
// nothing of TURN). Every message comes with a
// Conn through which the Handler can send to the client later (Data
// indications, ChannelData): at once over UDP, through a bounded
// per-connection queue and writer goroutine over TCP and TLS, where a
// full queue drops the message and counts it. A ConnCloseHandler learns
// when a connection closes; KeepOpen exempts a connection that carries a
// TURN allocation from the idle timeout; Detach hands a connection over
// to the Handler (the data connection of RFC 6062). A UDP datagram larger
// than MaxMessageSize, other messages included, is counted as malformed.
//
// Connections cannot hold the server's resources for long or in bulk:
// Config.PerIP bounds the connections and TLS handshakes of one client
// address, MessageTimeout the time a message takes to arrive whole,
// MaxReadBuffers the memory of half-read messages beyond each
// connection's first kilobyte, and an OtherHandler refuses a frame (a TURN
// server: ChannelData on a connection without a channel) before the
// server reads it. Each closed connection is counted in Stats.
package stunserver
