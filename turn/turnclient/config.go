package turnclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Transport is how the client reaches the TURN server. The relayed
// transport towards peers is UDP (Allocate) or TCP (AllocateTCP).
type Transport uint8

// Transports to the server. RFC 8656, Section 3.1.
const (
	UDP Transport = iota // the zero value
	TCP
	TLS
)

func (t Transport) String() string {
	switch t {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	case TLS:
		return "tls"
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// Family selects the address family of the relayed address. RFC 8656,
// Sections 7.1 and 18.6 (REQUESTED-ADDRESS-FAMILY) and 18.11
// (ADDITIONAL-ADDRESS-FAMILY).
type Family uint8

// Families of relayed addresses.
const (
	IPv4 Family = iota // the zero value: one IPv4 relayed address
	IPv6               // one IPv6 relayed address
	Dual               // an IPv4 and an IPv6 relayed address
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	case Dual:
		return "dual"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// Defaults.
const (
	DefaultPort    = 3478 // TURN over UDP and TCP
	DefaultTLSPort = 5349 // TURN over TLS
	// DefaultBindAfter is how many Send indications go to a peer before
	// the client binds it a channel.
	DefaultBindAfter = 2
	// DefaultRESTTTL is how long generated REST credentials are valid.
	DefaultRESTTTL = 24 * time.Hour
	// DefaultQueue is how many received datagrams wait for ReadFrom.
	DefaultQueue = 256
)

// Config configures Allocate. The zero value is not usable (it names no
// server); otherwise zero fields mean the documented defaults. Allocate
// copies it.
type Config struct {
	// Server is "host", "host:port", "IP" or "IP:port"; the port defaults
	// to 3478 (5349 for TLS).
	Server string
	// Transport to the server: UDP (the default), TCP or TLS.
	Transport Transport
	// TLSConfig is used for TLS. Nil means the system roots, with the
	// server's host name as ServerName.
	TLSConfig *tls.Config
	// Username and Password are long-term credentials (RFC 8489, Section
	// 9.2). Alternatively Secret generates TURN REST API credentials
	// (turn.RESTCredentials) for RESTUser, valid for RESTTTL (default 24 h).
	// They are generated once, at Allocate, and cannot be renewed for the
	// same allocation (RFC 8656, Section 5: same username throughout); a
	// server that checks their expiry on every request (icebreaker's does,
	// coturn does not) stops refreshing the allocation after RESTTTL, so
	// make it longer than the relay should live.
	Username, Password string
	Secret, RESTUser   string
	RESTTTL            time.Duration
	// Family of the relayed address: IPv4 (default), IPv6 or Dual.
	Family Family
	// Lifetime asks for an allocation lifetime (LIFETIME); zero lets the
	// server choose (usually 600 s). The client refreshes before expiry.
	Lifetime time.Duration
	// BindAfter is how many packets go to a peer as Send indications before
	// the client binds a channel for it; zero means DefaultBindAfter, 1
	// binds at the first packet (which still goes as a Send indication).
	BindAfter int
	// Queue bounds the received datagrams waiting for ReadFrom; more are
	// dropped and counted. Zero means DefaultQueue.
	Queue int
	// Retransmit is the STUN schedule over UDP (RFC 8489, Section 6.2.1).
	Retransmit stunclient.Retransmit
	// Software, if set, is sent as SOFTWARE.
	Software string
	// Logger receives debug records (refreshes, bindings, drops). Nil
	// means silent.
	Logger *slog.Logger

	// listenUDP, when set, opens the UDP socket in place of an ephemeral
	// one, so that this package's tests can choose the client port.
	listenUDP func(network string) (*net.UDPConn, error)
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("turnclient: no server")
	case c.Transport > TLS:
		return fmt.Errorf("turnclient: unknown transport %d", c.Transport)
	case c.Family > Dual:
		return fmt.Errorf("turnclient: unknown family %d", c.Family)
	case c.Secret != "" && (c.Username != "" || c.Password != ""):
		return errors.New("turnclient: give a REST secret or a username and password, not both")
	case (c.Username == "") != (c.Password == ""):
		return errors.New("turnclient: username and password go together")
	case c.Lifetime < 0 || c.RESTTTL < 0 || c.BindAfter < 0 || c.Queue < 0:
		return errors.New("turnclient: negative Lifetime, RESTTTL, BindAfter or Queue")
	case len(c.Software) > stun.MaxSoftware:
		return fmt.Errorf("turnclient: software of %d bytes exceeds %d", len(c.Software), stun.MaxSoftware)
	}
	if _, _, err := c.hostPort(); err != nil {
		return err
	}
	return nil
}

// hostPort splits Server, applying the default port.
func (c *Config) hostPort() (host string, port uint16, err error) {
	def := uint16(DefaultPort)
	if c.Transport == TLS {
		def = DefaultTLSPort
	}
	h, p, err := net.SplitHostPort(c.Server)
	if err != nil {
		// No port (or a bare IPv6 address).
		h := c.Server
		if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		return h, def, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("turnclient: bad port in server %q", c.Server)
	}
	if h == "" {
		return "", 0, fmt.Errorf("turnclient: no host in server %q", c.Server)
	}
	return h, uint16(n), nil
}

// Errors callers branch on (errors.Is). A STUN error response is also a
// *stun.Error (errors.As) with its code and reason.
var (
	// ErrQuotaReached: the server answered 486 (Allocation Quota Reached):
	// this user has too many allocations. RFC 8656, Section 19.
	ErrQuotaReached = errors.New("turn: allocation quota reached (486)")
	// ErrInsufficientCapacity: the server answered 508 (Insufficient
	// Capacity): it has no relayed address left. RFC 8656, Section 19.
	ErrInsufficientCapacity = errors.New("turn: server has insufficient capacity (508)")
	// ErrForbidden: the server refused a permission (403), usually by
	// its peer policy. WriteTo to that peer returns it.
	ErrForbidden = errors.New("turn: server forbids relaying to this peer (403)")
	// ErrConnectFailed: the server could not connect to the peer of a
	// TCPRelay.Dial (447 Connection Timeout or Failure). RFC 6062,
	// Section 6.3.
	ErrConnectFailed = errors.New("turn: the server could not connect to the peer (447)")
	// ErrConnectionExists: a TCPRelay already has a connection to that
	// peer (446 Connection Already Exists). RFC 6062, Section 6.3.
	ErrConnectionExists = errors.New("turn: a connection to this peer already exists (446)")
	// ErrAllocationLost: the allocation expired or the server no longer
	// knows it (437), or the connection to the server ended.
	ErrAllocationLost = errors.New("turn: allocation lost")
)

// classify wraps a STUN error response in the sentinel callers branch on.
func classify(err error) error {
	se, ok := errors.AsType[*stun.Error](err)
	if !ok {
		return err
	}
	switch se.Code {
	case stun.CodeAllocationQuotaReached:
		return fmt.Errorf("%w: %w", ErrQuotaReached, err)
	case stun.CodeInsufficientCapacity:
		return fmt.Errorf("%w: %w", ErrInsufficientCapacity, err)
	case stun.CodeForbidden:
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	case stun.CodeAllocationMismatch:
		return fmt.Errorf("%w: %w", ErrAllocationLost, err)
	case stun.CodeConnectionTimeoutOrFailure:
		return fmt.Errorf("%w: %w", ErrConnectFailed, err)
	case stun.CodeConnectionAlreadyExists:
		return fmt.Errorf("%w: %w", ErrConnectionExists, err)
	}
	return err
}

// comprehends lists the comprehension-required TURN attributes a response
// may carry. RFC 8656, Section 18; RFC 6062, Section 6.2.
func comprehends(a stun.AttrType) bool {
	switch a {
	case stun.AttrXORRelayedAddress, stun.AttrLifetime, stun.AttrReservationToken,
		stun.AttrXORPeerAddress, stun.AttrData, stun.AttrChannelNumber,
		stun.AttrConnectionID, stun.AttrEvenPort, stun.AttrRequestedAddressFamily,
		stun.AttrRequestedTransport, stun.AttrDontFragment:
		return true
	}
	return false
}
