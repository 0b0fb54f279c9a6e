package stunclient

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// Config configures a Client. The zero value means the RFC 8489 defaults:
// RTO 500 ms, Rc 7, Rm 16 over UDP, 39.5 s over TCP and TLS, no
// credentials, no SOFTWARE, no FINGERPRINT, no logging.
type Config struct {
	// Retransmit is the UDP schedule (RFC 8489, Section 6.2.1).
	Retransmit Retransmit
	// StreamTimeout is the transaction timeout over TCP and TLS (Section
	// 6.2.2). Zero means 39.5 s.
	StreamTimeout time.Duration
	// Username and Password are the long-term credentials, used only when
	// a server answers 401 (Section 9.2). Both or neither.
	Username, Password string
	// Software, if set, goes into every request as SOFTWARE.
	Software string
	// Fingerprint adds FINGERPRINT to every request (Section 7).
	Fingerprint bool
	// NoRedirect makes Do return a 300 (Try Alternate) as an
	// *AlternateServerError instead of following ALTERNATE-SERVER itself:
	// for a NewShared Client whose write function is bound to one
	// connection (TURN over TCP or TLS), whose caller dials the alternate
	// and validates its certificate against AlternateServerError.Domain.
	// Stream Clients never follow a 300.
	NoRedirect bool
	// Comprehends reports the comprehension-required attributes the
	// caller's usage understands in responses beyond those of RFC 8489
	// (for TURN: XOR-RELAYED-ADDRESS, LIFETIME, ...). A response with any
	// other attribute below 0x8000 fails its transaction. Nil: none.
	Comprehends func(stun.AttrType) bool
	// StreamOther frames the messages of another protocol that shares a
	// stream Client's connection with STUN, told apart by their first
	// byte (stun.StreamFrame, RFC 7983): for TURN ChannelData,
	// turn.StreamFramer. The Client skips them and counts them as
	// unmatched. Nil: a message that is not STUN breaks the stream's
	// framing and stops the Client. Ignored by datagram Clients.
	StreamOther stun.FrameFunc
	// Logger receives debug records about discarded packets and
	// retransmissions. Nil means silent.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Retransmit.RTO < 0 || c.Retransmit.Rc < 0 || c.Retransmit.Rm < 0:
		return fmt.Errorf("stunclient: negative retransmission parameter %+v", c.Retransmit)
	case c.StreamTimeout < 0:
		return fmt.Errorf("stunclient: negative stream timeout %v", c.StreamTimeout)
	case (c.Username == "") != (c.Password == ""):
		return errors.New("stunclient: username and password go together")
	case len(c.Username) > stun.MaxUsername:
		return fmt.Errorf("stunclient: username of %d bytes exceeds %d", len(c.Username), stun.MaxUsername)
	case len(c.Software) > stun.MaxSoftware:
		return fmt.Errorf("stunclient: software of %d bytes exceeds %d", len(c.Software), stun.MaxSoftware)
	}
	if c.Password != "" {
		if _, err := stun.PreparePassword(c.Password); err != nil {
			return fmt.Errorf("stunclient: password: %w", err)
		}
	}
	return nil
}

// BuildFunc appends a request's attributes to b, which holds the STUN
// header with transaction ID id, and returns the extended buffer (use the
// stun.Append functions). The Client calls it again for every new
// transaction of one Do call (after a 401, 438 or 300), then adds SOFTWARE,
// the credentials and FINGERPRINT. It must not keep b.
type BuildFunc func(b []byte, id stun.TransactionID) []byte

// Response is the response that ended a transaction. It owns its bytes:
// Message is parsed over Raw, which no one else refers to. The Client
// does not touch it after returning it; concurrent reads are safe.
type Response struct {
	Message stun.Message
	Raw     []byte
	// From is the response's source address (for a stream, the peer).
	From netip.AddrPort
	// Server is where the answered request was sent: the address given to
	// Do, or the ALTERNATE-SERVER it was redirected to.
	Server netip.AddrPort
	// RTT is the time from the latest transmission to the response.
	RTT time.Duration
	// Attempts counts transmissions of the answered request.
	Attempts int
	// Authenticated is true when the request carried credentials and the
	// response's integrity was verified with them.
	Authenticated bool
}

// Stats counts what a Client sent and what it dropped.
type Stats struct {
	Sent        uint64 // transmissions, retransmissions included
	Retransmits uint64
	Received    uint64 // responses that ended a transaction
	Malformed   uint64 // packets that are not STUN responses or do not parse
	Unmatched   uint64 // responses for no transaction this client knows
	Late        uint64 // responses for a transaction already finished: late or duplicate
	Discarded   uint64 // responses a transaction rejected (fingerprint, integrity, method, ...)
}

// maxAuthRounds bounds the 401/438 retries of one Do call.
const maxAuthRounds = 3

// inboxSize is how many responses may wait for one transaction; more are
// dropped and counted as Discarded.
const inboxSize = 4

// recentIDs is how many finished transaction IDs the Client remembers to
// tell late responses from unmatched ones.
const recentIDs = 64

// maxReadErrors is how many consecutive read errors (other than the
// socket being closed) end the read loop.
const maxReadErrors = 100

// Client runs STUN transactions over one socket: a UDP socket (New), a
// TCP or TLS connection (NewStream), or a socket owned by someone else
// (NewShared). It is safe for concurrent use: many Do calls may run at
// once, each matched to its responses by transaction ID. It caches the
// realm, nonce and key of each server that accepted its credentials
// (RFC 8489, Section 9.2.3.2). The zero value is not usable; use New,
// NewStream or NewShared.
type Client struct {
	cfg      Config
	log      *slog.Logger
	write    func(b []byte, to netip.AddrPort) error
	reliable bool
	local    netip.AddrPort
	remote   netip.AddrPort // streams only
	closer   io.Closer      // nil for NewShared

	mu      sync.Mutex
	pending map[stun.TransactionID]chan inbound
	recent  [recentIDs]stun.TransactionID
	nrecent int
	auth    map[netip.AddrPort]*authState
	stopped bool
	err     error // why the client stopped

	stop      chan struct{} // closed when the client stops
	readDone  chan struct{} // closed when the read loop exits; nil without one
	closeOnce sync.Once
	closeErr  error

	sent, retransmits, received, malformed, unmatched, late, discarded atomic.Uint64
}

type inbound struct {
	b    []byte
	from netip.AddrPort
}

func newClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:     cfg,
		log:     log,
		pending: make(map[stun.TransactionID]chan inbound),
		auth:    make(map[netip.AddrPort]*authState),
		stop:    make(chan struct{}),
	}, nil
}

// New returns a Client that runs transactions over conn, a datagram
// socket, with the UDP retransmission of RFC 8489, Section 6.2.1. The
// Client owns conn: it starts one goroutine reading it, and Close closes
// conn and waits for that goroutine. Any datagram that is not a response
// to an outstanding transaction is counted and dropped.
func New(conn net.PacketConn, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	c.local = netx.AddrPort(conn.LocalAddr())
	c.closer = conn
	c.write = func(b []byte, to netip.AddrPort) error {
		_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
		return err
	}
	c.readDone = make(chan struct{})
	go c.readPackets(conn)
	return c, nil
}

// NewStream returns a Client that runs transactions over conn, a TCP or
// TLS connection to one server: each request is sent once and waits up to
// StreamTimeout (RFC 8489, Section 6.2.2); messages are framed by their
// length field. The Client owns conn: it starts one goroutine reading it,
// and Close closes conn and waits for that goroutine. If the connection
// fails or the peer breaks the framing, every transaction fails and the
// Client stops.
func NewStream(conn net.Conn, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	c.reliable = true
	c.local = netx.AddrPort(conn.LocalAddr())
	c.remote = netx.AddrPort(conn.RemoteAddr())
	c.closer = conn
	var wmu sync.Mutex // keeps concurrent requests from interleaving
	c.write = func(b []byte, _ netip.AddrPort) error {
		wmu.Lock()
		defer wmu.Unlock()
		// A peer that stops reading must not block Do past its timeout.
		conn.SetWriteDeadline(time.Now().Add(cmp.Or(cfg.StreamTimeout, StreamTimeout)))
		_, err := conn.Write(b)
		return err
	}
	c.readDone = make(chan struct{})
	go c.readStream(conn, cfg.StreamOther)
	return c, nil
}

// NewShared returns a UDP Client for a socket that the caller owns and
// reads, one that also carries other traffic (ICE checks, TURN
// ChannelData, media). The Client sends with write and learns of incoming
// packets only through HandlePacket. It starts no goroutine; Close fails
// the outstanding transactions and does not touch the socket. local is
// reported as BindingResult.Local.
func NewShared(write func(b []byte, to netip.AddrPort) error, local netip.AddrPort, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	c.local = local
	c.write = write
	return c, nil
}

// LocalAddr returns the address of the Client's socket, as the socket
// reports it (an unspecified IP if it was bound to one).
func (c *Client) LocalAddr() netip.AddrPort { return c.local }

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Sent:        c.sent.Load(),
		Retransmits: c.retransmits.Load(),
		Received:    c.received.Load(),
		Malformed:   c.malformed.Load(),
		Unmatched:   c.unmatched.Load(),
		Late:        c.late.Load(),
		Discarded:   c.discarded.Load(),
	}
}

// Close stops the Client: outstanding transactions fail with an error
// wrapping net.ErrClosed, the socket (unless shared) is closed, and Close
// returns once the read goroutine has exited. Calling it again does
// nothing and returns the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.shutdown(net.ErrClosed)
		if c.closer != nil {
			c.closeErr = c.closer.Close()
		}
		if c.readDone != nil {
			<-c.readDone
		}
	})
	return c.closeErr
}

// shutdown stops the client for reason err (the first reason wins).
func (c *Client) shutdown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped, c.err = true, err
	close(c.stop)
}

func (c *Client) stoppedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, net.ErrClosed) {
		return fmt.Errorf("stun: client: %w", c.err)
	}
	return c.err
}

// HandlePacket offers a packet that arrived on the socket of a Client made
// by NewShared (New and NewStream call it from their read loops). It
// reports whether b is a STUN response (a success or error response with
// the magic cookie), which the Client consumes whether or not a
// transaction still waits for it; other packets are the caller's. It does
// not keep b. Safe to call from any goroutine.
func (c *Client) HandlePacket(b []byte, from netip.AddrPort) bool {
	if len(b) < stun.HeaderSize || b[0]&0xc0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stun.MagicCookie {
		return false
	}
	if cl := stun.TypeFromValue(binary.BigEndian.Uint16(b[0:2])).Class; cl != stun.ClassSuccess && cl != stun.ClassError {
		return false
	}
	id := stun.TransactionID(b[8:20])
	c.mu.Lock()
	ch := c.pending[id]
	late := ch == nil && c.recentLocked(id)
	c.mu.Unlock()
	switch {
	case ch != nil:
		select {
		case ch <- inbound{b: append([]byte(nil), b...), from: from}:
		default:
			c.discarded.Add(1)
		}
	case late:
		c.late.Add(1)
	default:
		c.unmatched.Add(1)
	}
	return true
}

func (c *Client) recentLocked(id stun.TransactionID) bool {
	for i := range min(c.nrecent, recentIDs) {
		if c.recent[i] == id {
			return true
		}
	}
	return false
}

func (c *Client) register(id stun.TransactionID, ch chan inbound) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		if errors.Is(c.err, net.ErrClosed) {
			return fmt.Errorf("stun: client: %w", c.err)
		}
		return c.err
	}
	if _, dup := c.pending[id]; dup {
		return errors.New("stun: transaction ID collision") // 2^-96: a broken random source
	}
	c.pending[id] = ch
	return nil
}

// unregister forgets a finished transaction, remembering its ID to
// recognise late responses; responses still queued for it count as late.
func (c *Client) unregister(id stun.TransactionID, ch chan inbound) {
	c.mu.Lock()
	delete(c.pending, id)
	c.recent[c.nrecent%recentIDs] = id
	c.nrecent++
	c.mu.Unlock()
	for {
		select {
		case <-ch:
			c.late.Add(1)
		default:
			return
		}
	}
}

func (c *Client) cachedAuth(server netip.AddrPort) *authState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth[server]
}

func (c *Client) storeAuth(server netip.AddrPort, a *authState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a == nil {
		delete(c.auth, server)
	} else {
		c.auth[server] = a
	}
}

// readPackets is the read loop of a datagram Client. It ends when the
// socket is closed or keeps failing.
func (c *Client) readPackets(conn net.PacketConn) {
	defer close(c.readDone)
	buf := make([]byte, 64<<10)
	fails := 0
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			fails++
			if errors.Is(err, net.ErrClosed) || fails >= maxReadErrors {
				c.shutdown(fmt.Errorf("stun: reading %s: %w", c.local, err))
				return
			}
			continue
		}
		fails = 0
		if !c.HandlePacket(buf[:n], netx.AddrPort(addr)) {
			c.malformed.Add(1)
		}
	}
}
