package stunserver

import (
	"errors"
	"net"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Handler is the extension point for STUN usages beyond Binding, such as a
// TURN server (RFC 8656): the server passes it every request and
// indication, with the magic cookie, whose method is not Binding, after
// the checks of RFC 8489, Section 6.3 (well-formed, FINGERPRINT correct).
// Unknown comprehension-required attributes are the Handler's to judge.
//
// ServeSTUN appends its response, if any, to out (which has length 0) and
// returns it; the server sends it to req.From through the socket or
// connection the message arrived on. Returning an empty slice sends
// nothing. The returned bytes and out belong to the server and are reused
// after the call.
//
// ServeSTUN is called concurrently from the receive goroutines of all
// sockets and connections, on the receive path: it must be safe for
// concurrent use and must not block.
//
// A Handler may also implement OtherHandler and ConnCloseHandler.
type Handler interface {
	ServeSTUN(out []byte, req *Request) []byte
}

// OtherHandler is implemented by a Handler that also takes messages that
// are not STUN, told apart by their first byte (stun.IsSTUNByte, RFC 7983,
// Section 7), as quic-go's Transport hands the packets that are not QUIC
// to its caller. A TURN server takes ChannelData this way (RFC 8656,
// Section 12.4); the server knows nothing of it. Without an OtherHandler
// such messages are counted as malformed and dropped, and over TCP or TLS
// they end the connection.
//
// FrameOther decides whether the Handler takes the message that starts
// with b (at least one byte, whose first byte is not STUN's) from c, and
// over TCP and TLS how long its frame is, with the shape of stun.FrameFunc:
// the frame's whole length, padding included; or 0 and the bytes it needs
// to decide; or an error to refuse it. A refused datagram is counted as
// malformed and dropped; a refused frame ends its connection, counted as
// malformed. FrameOther may look at c's state: a TURN server refuses a
// large ChannelData frame on a connection that has no channel to take it,
// before the server reads the frame. Over TCP and TLS it is asked only
// after the connection carried a message to ServeSTUN. Over UDP the
// length is not used (b is the whole datagram).
//
// ServeOther takes one message FrameOther accepted: over UDP the whole
// datagram, over TCP and TLS one frame of the length FrameOther gave.
// req.Msg is nil. pkt and req are valid only during the call.
//
// Both have the concurrency and non-blocking duties of ServeSTUN;
// ServeOther never answers synchronously.
type OtherHandler interface {
	FrameOther(c Conn, b []byte) (n, need int, err error)
	ServeOther(req *Request, pkt []byte)
}

// OtherBatcher is implemented by an OtherHandler that takes messages
// arriving over UDP in batches, to save system calls (a TURN server relays
// ChannelData so). Each UDP receive goroutine makes one OtherBatch when it
// starts and passes it the other messages of every datagram it reads;
// after each batch of datagrams read at once (recvmmsg) it calls Flush.
// TCP and TLS still go through ServeOther.
type OtherBatcher interface {
	NewOtherBatch() OtherBatch
}

// UDPSocket is implemented by the Conn of a UDP listening socket. UDPConn
// returns the socket itself, for a Handler that sends many datagrams to
// clients with batched system calls of its own (turnserver relays peers'
// data this way); such a Handler must only write to it, never read,
// close it or change its options. The socket is the Server's and closes
// with it.
type UDPSocket interface {
	Conn
	UDPConn() *net.UDPConn
}

// OtherBatch is the per-goroutine state of an OtherBatcher. It is used by
// one goroutine only. Its ServeOther may defer its work until Flush: pkt
// stays valid until Flush returns (req only during the call). Its
// FrameOther is the OtherHandler's.
type OtherBatch interface {
	ServeOther(req *Request, pkt []byte)
	Flush()
}

// ConnCloseHandler is implemented by a Handler that must learn when a TCP
// or TLS connection closes, for whatever reason (RFC 8656, Section 3.1: a
// TURN allocation on a stream ends with the connection). ConnClosed is
// called once per connection that delivered at least one message to the
// Handler, after the connection's socket is closed and its last
// ServeSTUN call has returned. It is not called for a connection the
// Handler detached (Conn.Detach). It must not block.
type ConnCloseHandler interface {
	ConnClosed(c Conn)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(out []byte, req *Request) []byte

// ServeSTUN calls f(out, req).
func (f HandlerFunc) ServeSTUN(out []byte, req *Request) []byte { return f(out, req) }

// Request is one message passed to a Handler. It, the Message and the bytes
// the Message refers to are valid only during the ServeSTUN call; Conn
// stays valid after it.
type Request struct {
	Msg *stun.Message
	// From is the sender's transport address, IPv4-mapped addresses
	// unmapped.
	From netip.AddrPort
	// Local is the address the message arrived on: the listener's address
	// for UDP (unspecified for a wildcard socket), the connection's local
	// address for TCP and TLS.
	Local netip.AddrPort
	// Network is "udp", "tcp" or "tls".
	Network string
	// Conn is the socket or connection the message arrived on, through
	// which the Handler may send to the client later.
	Conn Conn
}

// Errors of Conn.WriteTo and Conn.Detach.
var (
	// ErrQueueFull reports a message dropped because the TCP or TLS
	// connection's write queue was full: the client reads more slowly
	// than the Handler sends.
	ErrQueueFull = errors.New("stunserver: connection write queue full")
	// ErrNotStream reports Detach on a UDP socket.
	ErrNotStream = errors.New("stunserver: not a TCP or TLS connection")
)

// Conn is the socket (UDP) or connection (TCP, TLS) a message arrived on.
// A Handler keeps it to send to the client at any time, as a TURN server
// does with Data indications and ChannelData (RFC 8656, Sections 11.3 and
// 12.7). For TCP and TLS the same Conn stands for the connection for its
// whole life; for UDP a Conn stands for one listening socket and can send
// to any address.
//
// Every method is safe for concurrent use.
type Conn interface {
	// Network is "udp", "tcp" or "tls".
	Network() string
	// LocalAddr is the socket's or connection's local address.
	LocalAddr() netip.AddrPort
	// RemoteAddr is the client's address for TCP and TLS, and the zero
	// AddrPort for UDP.
	RemoteAddr() netip.AddrPort
	// WriteTo sends b to the client. Over UDP it sends a datagram to to
	// at once. Over TCP and TLS to is ignored: b is copied into the
	// connection's bounded write queue, drained by a goroutine the
	// connection owns, and WriteTo returns ErrQueueFull (counted in
	// Stats.QueueDrops) if there is no room. It never blocks on the
	// client. After the connection or socket closed it returns an error
	// matching net.ErrClosed. b is not retained.
	WriteTo(b []byte, to netip.AddrPort) error
	// KeepOpen exempts a TCP or TLS connection from
	// Config.TCPIdleTimeout while on is true, so that a TURN allocation
	// on it lives as long as its own lifetime says. It does nothing for
	// UDP.
	KeepOpen(on bool)
	// Detach hands a TCP or TLS connection over to the Handler, as the
	// data connection of RFC 6062 (Section 5.4) needs. It may only be
	// called during a ServeSTUN call on this connection. Once that call
	// returns and its response (if any) is written, the server stops
	// reading, forgets the connection (it no longer counts against
	// MaxTCPConns and Close does not close it), and calls f with the
	// connection (the *tls.Conn for TLS) and the bytes already read past
	// the message, which f owns. f runs on the server's goroutine and
	// must not block; from then on the Handler owns the connection and
	// must close it. If the connection fails first, f is not called.
	// Over UDP Detach returns ErrNotStream.
	Detach(f func(c net.Conn, buffered []byte)) error
}
