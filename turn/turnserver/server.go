package turnserver

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/internal/ratelog"
	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// sweepInterval is how often the janitor expires allocations,
// permissions, channels and reservations. Expiry is therefore late by up
// to this much.
const sweepInterval = time.Second

// Server is a TURN server: a stunserver.Handler (with ChannelData and
// connection-close hooks) that the STUN listeners hand their non-Binding
// traffic to. It is safe for concurrent use.
//
// Goroutines: on Linux one relay reader per CPU, each polling its share
// of the relay sockets (elsewhere one per relay socket); one janitor,
// which expires state every second; for RFC 6062, an accept goroutine per
// TCP allocation, one per pending Connect and two per data connection.
// The first allocation starts the readers and the janitor; Close ends
// them all.
type Server struct {
	cfg    Config
	log    *slog.Logger
	auth   *authSwitch   // SetAuth swaps it (reload.go)
	policy *policySwitch // SetPolicy swaps it
	epoch  time.Time

	allocs   *table
	ports    [2]*portPool  // by familyIndex
	relayIP  [2]netip.Addr // bind addresses by familyIndex; invalid = family off
	publicIP [2]netip.Addr // advertised addresses by familyIndex

	mu           sync.Mutex // guards the fields below
	closed       bool
	janitor      bool
	count        int // allocations
	users        map[string]*user
	reservations map[[8]byte]*reservation
	peerConns    map[uint32]*peerConn    // RFC 6062 connections by CONNECTION-ID
	pollers      []*udpio.Poller[*relay] // relay socket readers, started with the first relay
	// clientTargets are the UDP listening sockets that relay readers
	// send to clients through, by socket.
	clientTargets map[*net.UDPConn]*udpio.Target

	nextPoller atomic.Uint32 // spreads relays over pollers
	gone       totals        // counters of deleted allocations

	abuse    abuse
	abuseLog *ratelog.Logger // refusals and failures, rate-limited per source
	graves   *graveyard      // last deletion per 5-tuple, against replayed nonces
	errLimit *iplimit.Limiter
	fds      fdBudget // descriptors held, against Quotas.Descriptors

	droppedNoAllocation, droppedMalformed, readErrors atomic.Uint64
	gsoDisabled                                       atomic.Uint64 // sockets the kernel refused UDP GSO on

	draining atomic.Pointer[drainState] // set by Drain (reload.go)
	quotas   atomic.Pointer[Quotas]     // cfg.Quotas, then SetQuotas's (reload.go)

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New validates cfg and returns a Server. It opens no socket and starts no
// goroutine; allocations do. The caller must Close it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	s := &Server{
		cfg:          c,
		log:          c.Logger,
		auth:         newAuthSwitch(c.Auth),
		policy:       newPolicySwitch(c.Policy),
		epoch:        c.Clock(),
		allocs:       newTable(),
		users:        make(map[string]*user),
		reservations: make(map[[8]byte]*reservation),
		peerConns:    make(map[uint32]*peerConn),
		done:         make(chan struct{}),
		abuseLog:     ratelog.New(ratelog.Config{Logger: c.Logger, Now: c.Clock}),
		graves:       newGraveyard(),
		errLimit:     c.ErrorLimiter,
		fds:          fdBudget{max: int64(c.Quotas.Descriptors)},
	}
	s.relayIP = [2]netip.Addr{c.RelayIPv4, c.RelayIPv6}
	s.publicIP = s.relayIP
	if c.ExternalIPv4.IsValid() {
		s.publicIP[0] = c.ExternalIPv4
	}
	if c.ExternalIPv6.IsValid() {
		s.publicIP[1] = c.ExternalIPv6
	}
	quotas := c.Quotas
	s.quotas.Store(&quotas)
	for i := range s.ports {
		s.ports[i] = &portPool{min: c.PortRange.Min, max: c.PortRange.Max}
	}
	return s, nil
}

// mono is the server's monotonic clock: nanoseconds since New, from
// Config.Clock.
func (s *Server) mono() int64 { return int64(s.cfg.Clock().Sub(s.epoch)) }

// serves reports whether the server relays family f.
func (s *Server) serves(f turn.Family) bool { return s.relayIP[familyIndex(f)].IsValid() }

// request is what the handlers of one request share.
type request struct {
	req  *stunserver.Request
	m    *stun.Message
	key  fiveTuple
	auth turnauth.Result
	now  int64 // s.mono() when the request arrived
	// graveFloor is the graveyard's last deletion on key, read when
	// the 5-tuple held no allocation (Unix microseconds); an Allocate
	// records it as the allocation's notBefore.
	graveFloor int64
}

// ServeSTUN answers TURN requests and relays Send indications; it
// implements stunserver.Handler. RFC 8656, Section 5, then the method's
// own section.
func (s *Server) ServeSTUN(out []byte, req *stunserver.Request) []byte {
	m := req.Msg
	switch m.Type.Class {
	case stun.ClassIndication:
		if m.Type.Method == stun.MethodSend {
			s.serveSend(req)
		}
		return nil
	case stun.ClassRequest:
	default:
		return nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	switch m.Type.Method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind,
		stun.MethodConnect, stun.MethodConnectionBind:
	default:
		if !s.errLimit.Allow(req.From.Addr()) {
			s.abuse.errorsLimited.Add(1)
			return nil
		}
		b := stun.AppendHeader(out, stun.Type{Method: m.Type.Method, Class: stun.ClassError}, m.TransactionID)
		b = stun.AppendErrorCode(b, stun.CodeBadRequest, "Unsupported method")
		return stun.AppendFingerprint(s.appendSoftware(b))
	}
	wall := s.cfg.Clock()
	r := &request{
		req: req,
		m:   m,
		key: fiveTuple{req.From, req.Local, transportOf(req.Network)},
		now: int64(wall.Sub(s.epoch)),
	}
	// RFC 8656, Section 5 and RFC 8489, Section 9.2.4: authenticate
	// first; 401 and 438 carry the realm and a fresh nonce.
	client := turnauth.Client{Addr: req.From, Transport: authTransport(r.key.transport)}
	res, ch := s.auth.Authenticate(context.Background(), m, client, wall)
	if ch != nil && ch.Why == turnauth.StaleNonce {
		if ctl, ok := s.controlClient(r); ok {
			if res2, ch2 := s.auth.Authenticate(context.Background(), m, ctl, wall); ch2 == nil {
				res, ch = res2, nil
			}
		}
	}
	if ch == nil && s.replayed(r, res.NonceIssued.UnixMicro()) {
		// The nonce predates the deletion of an allocation on this
		// 5-tuple: what it signed may be a replay aimed at a later one.
		s.abuse.nonceReplays.Add(1)
		ch = turnauth.StaleNonceChallenge("nonce issued before an allocation on this 5-tuple was deleted")
	}
	if ch != nil {
		if m.Type.Method == stun.MethodRefresh {
			s.endRevoked(r.key)
		}
		s.authFailed(m, req, ch)
		if !s.errLimit.Allow(req.From.Addr()) {
			s.abuse.errorsLimited.Add(1)
			return nil
		}
		b := stun.AppendHeader(out, stun.Type{Method: m.Type.Method, Class: stun.ClassError}, m.TransactionID)
		b = s.auth.AppendChallenge(b, ch, client, wall)
		if !m.Has(stun.AttrFingerprint) {
			// RFC 8489, Section 7.3.1 leaves FINGERPRINT to the
			// usage; a client that sends none needs none, and the
			// answer to a spoofed request stays short.
			return s.appendSoftware(b)
		}
		return stun.AppendFingerprint(s.appendSoftware(b))
	}
	r.auth = res
	// RFC 8489, Section 6.3.1: unknown comprehension-required
	// attributes get 420.
	var unk [8]stun.AttrType
	if list := m.UnknownRequired(unk[:0], knownAttr); len(list) > 0 {
		return s.fail(out, r, stun.CodeUnknownAttribute, "", list...)
	}
	switch m.Type.Method {
	case stun.MethodAllocate:
		if b := s.drainAllocate(out, r); b != nil {
			return b
		}
		return s.allocate(out, r)
	case stun.MethodRefresh:
		return s.refresh(out, r)
	case stun.MethodCreatePermission:
		return s.createPermission(out, r)
	case stun.MethodChannelBind:
		return s.channelBind(out, r)
	}
	return s.serveTCPRelay(out, r)
}

// replayed reports whether a nonce issued at issued (Unix microseconds)
// predates the last deletion of an allocation on r's 5-tuple. While the
// 5-tuple holds an allocation, the deletion it was made after decides:
// that was read from the graveyard when the allocation was made, so the
// deletions that later land in the same graveyard slot from other
// 5-tuples refuse none of its requests (they did: under thousands of
// deletions a Refresh with LIFETIME 0 could get 438 twice in a row, and
// the allocation outlived its client's delete). Without an allocation,
// the graveyard decides.
func (s *Server) replayed(r *request, issued int64) bool {
	if a := s.allocs.get(r.key); a != nil {
		return issued < a.notBefore
	}
	r.graveFloor = s.graves.last(r.key)
	return issued < r.graveFloor
}

// controlClient returns, for a ConnectionBind, the client transport
// address of the control connection of its allocation: RFC 6062 (Section
// 4.4) sends ConnectionBind on a new data connection, and clients sign it
// with the control connection's nonce. That nonce is accepted from the
// same IP address only.
func (s *Server) controlClient(r *request) (turnauth.Client, bool) {
	if r.m.Type.Method != stun.MethodConnectionBind || r.key.transport == transportUDP {
		return turnauth.Client{}, false
	}
	v, ok := r.m.Get(stun.AttrConnectionID)
	if !ok {
		return turnauth.Client{}, false
	}
	cid, err := turn.ParseConnectionID(v)
	if err != nil {
		return turnauth.Client{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.peerConns[cid]
	if pc == nil || pc.a.key.client.Addr() != r.key.client.Addr() {
		return turnauth.Client{}, false
	}
	return turnauth.Client{Addr: pc.a.key.client, Transport: authTransport(pc.a.key.transport)}, true
}

// knownAttr reports the comprehension-required attributes the server
// understands in TURN requests and indications: those of RFC 8489,
// RFC 8656 and RFC 6062. DONT-FRAGMENT only where the server can set DF
// (RFC 8656, Section 7.2, step 4).
func knownAttr(t stun.AttrType) bool {
	switch t {
	case stun.AttrUsername, stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256,
		stun.AttrRealm, stun.AttrNonce, stun.AttrPasswordAlgorithm, stun.AttrUserhash,
		stun.AttrErrorCode, stun.AttrUnknownAttributes, stun.AttrXORMappedAddress,
		stun.AttrMappedAddress, stun.AttrChannelNumber, stun.AttrLifetime,
		stun.AttrXORPeerAddress, stun.AttrData, stun.AttrXORRelayedAddress,
		stun.AttrRequestedAddressFamily, stun.AttrEvenPort, stun.AttrRequestedTransport,
		stun.AttrReservationToken, stun.AttrConnectionID:
		return true
	case stun.AttrDontFragment:
		return udpio.DontFragmentSupported
	}
	return false
}

func (s *Server) appendSoftware(b []byte) []byte {
	if s.cfg.Software != "" {
		b = stun.AppendAttrString(b, stun.AttrSoftware, s.cfg.Software)
	}
	return b
}

// success starts a success response to r.
func successHeader(out []byte, r *request) []byte {
	return stun.AppendHeader(out, stun.Type{Method: r.m.Type.Method, Class: stun.ClassSuccess}, r.m.TransactionID)
}

// finish appends SOFTWARE and the signature with the key the request was
// authenticated with: MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.
func (s *Server) finish(b []byte, r *request) []byte {
	return r.auth.AppendSignature(s.appendSoftware(b))
}

// fail builds a signed error response to r with code, a reason (empty:
// the standard phrase) and, for 420, the unknown attributes.
func (s *Server) fail(out []byte, r *request, code int, reason string, unknown ...stun.AttrType) []byte {
	b := stun.AppendHeader(out, stun.Type{Method: r.m.Type.Method, Class: stun.ClassError}, r.m.TransactionID)
	b = stun.AppendErrorCode(b, code, reason)
	if len(unknown) > 0 {
		b = stun.AppendUnknownAttributes(b, unknown)
	}
	return s.finish(b, r)
}

// ConnClosed deletes the allocation of a TCP or TLS connection that
// closed (RFC 8656, Section 3.1); it implements
// stunserver.ConnCloseHandler.
func (s *Server) ConnClosed(c stunserver.Conn) {
	key := fiveTuple{c.RemoteAddr(), c.LocalAddr(), transportOf(c.Network())}
	if a := s.allocs.get(key); a != nil && a.conn == c {
		s.remove(a, "connection closed")
	}
}

// Close deletes every allocation and reservation, closing their sockets,
// and returns once every goroutine the Server started has exited. The
// Server then answers nothing. Close may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		res := s.reservations
		s.reservations = make(map[[8]byte]*reservation)
		for _, r := range res {
			r.unreserveLocked(s)
		}
		s.mu.Unlock()
		s.allocs.each(func(a *allocation) { s.remove(a, "server closed") })
		for _, r := range res {
			r.release(s)
		}
		s.closeTCPRelays()
		s.stopPollers()
	})
	s.wg.Wait()
	return nil
}

// startJanitorLocked starts the janitor if it is not running. s.mu must be
// held and the server not closed.
func (s *Server) startJanitorLocked() {
	if s.janitor {
		return
	}
	s.janitor = true
	s.wg.Add(1)
	go s.runJanitor()
}

func (s *Server) runJanitor() {
	defer s.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep expires what is due on Config.Clock: allocations (RFC 8656,
// Section 8), permissions (Section 9), channels (Section 12) and
// reservations (Section 7.2). The janitor calls it every second; tests
// call it after moving a fake clock.
func (s *Server) sweep() {
	now := s.mono()
	s.allocs.each(func(a *allocation) {
		if a.expires.Load() <= now {
			s.remove(a, "expired")
			return
		}
		a.expirePeers(now)
	})
	var due []*reservation
	s.mu.Lock()
	for tok, r := range s.reservations {
		if r.expires <= now {
			due = append(due, r)
			delete(s.reservations, tok)
			r.unreserveLocked(s)
		}
	}
	s.mu.Unlock()
	for _, r := range due {
		r.release(s)
	}
	s.sweepTCPRelays(now)
}

// remove deletes an allocation: out of the table, its relay sockets
// closed (ending their goroutines), its quota returned.
func (s *Server) remove(a *allocation, why string) {
	s.allocs.remove(a)
	a.mu.Lock()
	if a.gone {
		a.mu.Unlock()
		return
	}
	a.gone = true
	a.mu.Unlock()
	var relays []string
	info := s.log.Enabled(context.Background(), slog.LevelInfo)
	if info {
		relays = a.relayAddrs()
	}
	for i := range a.relays {
		if r := a.relays[i].Swap(nil); r != nil {
			r.close()
		}
	}
	a.closeTCPConnections()
	if a.stream {
		a.conn.KeepOpen(false)
	}
	s.graves.bury(a.key, s.cfg.Clock().UnixMicro())
	s.mu.Lock()
	s.count--
	s.releaseUserLocked(a.user)
	s.gone.add(a)
	s.mu.Unlock()
	if info {
		s.logEnded(a, why, relays)
	}
}
