package stunserver

import (
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
type Handler interface {
	ServeSTUN(out []byte, req *Request) []byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(out []byte, req *Request) []byte

// ServeSTUN calls f(out, req).
func (f HandlerFunc) ServeSTUN(out []byte, req *Request) []byte { return f(out, req) }

// Request is one message passed to a Handler. It, the Message and the bytes
// the Message refers to are valid only during the ServeSTUN call.
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
}
