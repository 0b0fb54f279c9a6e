package ice

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun/stunuri"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// DefaultTURNTimeout bounds each TURN allocation of Gather.
const DefaultTURNTimeout = 5 * time.Second

// TURNServer is a TURN server that Gather allocates a relayed candidate on,
// through package turnclient (RFC 8656). It is a plain value.
type TURNServer struct {
	// Addr is the server's address.
	Addr netip.AddrPort
	// Transport to the server: turnclient.UDP (the zero value), TCP or
	// TLS. The relayed candidate is UDP whatever the transport.
	Transport turnclient.Transport
	// Username and Password are long-term credentials; or Secret mints
	// TURN REST API credentials (turnclient.Config.Secret).
	Username, Password, Secret string
	// TLSConfig is used for TLS; nil means the system roots.
	TLSConfig *tls.Config
}

// URI returns the server as a TURN URI, RFC 7065, Section 3.1:
// turn:192.0.2.1:3478?transport=udp, or turns: for TLS.
func (s *TURNServer) URI() string {
	u := stunuri.FromAddrPort(stunuri.TURN, s.Addr)
	switch s.Transport {
	case turnclient.TCP:
		u.Transport = stunuri.TCP
	case turnclient.TLS:
		u.Scheme, u.Transport = stunuri.TURNS, stunuri.TCP
	default:
		u.Transport = stunuri.UDP
	}
	return u.String()
}

// Validate reports a configuration error.
func (s *TURNServer) Validate() error {
	switch {
	case !s.Addr.IsValid() || s.Addr.Port() == 0 || s.Addr.Addr().IsUnspecified():
		return fmt.Errorf("ice: GatherConfig: bad TURN server %v", s.Addr)
	case s.Secret == "" && s.Username == "":
		return fmt.Errorf("ice: GatherConfig: TURN server %v: no credentials", s.Addr)
	}
	return nil
}

// allocate creates an allocation on ts and returns its relayed candidate,
// whose base is the relayed address itself and whose related address is
// the mapped one (RFC 8445, Section 5.1.1.2; RFC 8839, Section 5.1). The
// relay joins the Agent's bases with a read and a write goroutine.
func (a *Agent) allocate(ctx context.Context, ts *TURNServer, pref uint32, gen int) (Candidate, error) {
	timeout := a.cfg.Gather.TURNTimeout
	if timeout == 0 {
		timeout = DefaultTURNTimeout
	}
	actx, cancel := a.context(ctx) // Close ends the allocation
	defer cancel()
	actx, cancelTimeout := context.WithTimeout(actx, timeout)
	defer cancelTimeout()
	r, err := turnclient.Allocate(actx, turnclient.Config{
		Server:    ts.Addr.String(),
		Transport: ts.Transport,
		TLSConfig: ts.TLSConfig,
		Username:  ts.Username,
		Password:  ts.Password,
		Secret:    ts.Secret,
		Logger:    a.cfg.Logger,
		Queue:     dataQueueLen, // what a relayed Conn receives waits here first
	})
	if err != nil {
		return Candidate{}, err
	}
	relayed := netx.Unmap(r.Relayed()[0])
	s := &sock{relay: r, out: make(chan outPacket, queueLen), stop: make(chan struct{}), addr: relayed, pref: pref, gen: gen}
	if !a.socks.add(s, a.readLoop, a.writeLoop) {
		r.Close()
		return Candidate{}, net.ErrClosed
	}
	return Candidate{
		Foundation: Foundation(TypeRelay, relayed.Addr(), netx.Unmap(ts.Addr).Addr(), TransportUDP),
		Component:  1,
		Transport:  TransportUDP,
		Priority:   Priority(TypeRelay.Preference(), pref, 1),
		Addr:       relayed,
		Type:       TypeRelay,
		Related:    netx.Unmap(r.Mapped()),
		Base:       relayed,
		Origin:     OriginTURN,
	}, nil
}

// writeLoop sends the packets the loop queued on a relay, so that the
// loop never waits for a permission. It stops with the Agent.
func (a *Agent) writeLoop(s *sock) {
	for {
		select {
		case <-a.life.done:
			return
		case <-s.stop: // retired after an ICE restart
			return
		case p := <-s.out:
			if err := s.send(p.b, p.to); err != nil && !errors.Is(err, net.ErrClosed) {
				a.counters.dropped.Add(1)
			}
		}
	}
}

// permit creates, in the background, the permissions of every relay for
// the remote candidates' addresses of its family (RFC 8656, Section 9), so
// that the peer's first checks to a relayed candidate get through and the
// first checks sent through a relay do not wait for them.
func (a *Agent) permit(remotes []Candidate) {
	relays := a.socks.filter(func(s *sock) bool { return s.relay != nil })
	for _, s := range relays {
		var ips []netip.Addr
		for _, r := range remotes {
			ip := r.Addr.Addr().Unmap()
			if r.Transport == TransportUDP && ip.IsValid() && ip.Is4() == s.addr.Addr().Is4() && !slices.Contains(ips, ip) {
				ips = append(ips, ip)
			}
		}
		if len(ips) == 0 {
			continue
		}
		a.spawn(func() {
			ctx, cancel := a.context(context.Background())
			defer cancel()
			for _, ip := range ips {
				if err := s.relay.CreatePermission(ctx, ip); err != nil {
					a.log.Debug("ice: TURN permission failed", "relay", s.addr, "peer", ip, "err", err)
				}
			}
		})
	}
}
