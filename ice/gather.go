package ice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/portmap"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// GatherConfig selects the candidates an Agent gathers. RFC 8445, Section
// 5.1.1. The zero value means host candidates on every up interface's
// addresses, IPv4 and IPv6, except loopback and link-local ones, and no
// server-reflexive candidates.
type GatherConfig struct {
	// IncludeLoopback and IncludeLinkLocal admit loopback and link-local
	// addresses (RFC 8445, Section 5.1.1.1 says not to use them by
	// default).
	IncludeLoopback, IncludeLinkLocal bool
	// DisableIPv4 and DisableIPv6 leave out an address family.
	DisableIPv4, DisableIPv6 bool
	// InterfaceFilter, if set, admits only the interfaces it returns true
	// for.
	InterfaceFilter func(net.Interface) bool
	// IPFilter, if set, admits only the addresses it returns true for.
	IPFilter func(netip.Addr) bool
	// PortRange confines the ports of host sockets; zero means any.
	PortRange PortRange

	// STUNServers are asked for server-reflexive candidates: each host
	// socket sends a Binding request to each server of its family, on the
	// socket itself, so the mapping is the one checks will use.
	STUNServers []netip.AddrPort
	// STUNTimeout bounds each of those Bindings; 0 means
	// DefaultSTUNTimeout. A server that does not answer in time yields no
	// candidate and no error from Gather: its failure is in
	// AgentStats.GatherFailures.
	STUNTimeout time.Duration

	// TURNServers are asked for relayed candidates (RFC 8445, Section
	// 5.1.1.2): one allocation per server through package turnclient,
	// over the server's transport. A server that fails or does not answer
	// within TURNTimeout yields no candidate and no error from Gather: its
	// failure is in AgentStats.GatherFailures.
	TURNServers []TURNServer
	// TURNTimeout bounds each allocation; 0 means DefaultTURNTimeout.
	TURNTimeout time.Duration

	// PortMapper, if set, asks the router (the default gateway) to map
	// each IPv4 host socket on its link, through PCP, NAT-PMP or UPnP IGD
	// (package portmap), beside the STUN Bindings. A mapping gives a
	// candidate of type srflx with Origin OriginPortMap, unless its
	// external address is not one a STUN server saw (double NAT). The
	// mapping is renewed while its socket is open and deleted when it
	// closes. nil means nothing is sent to the router.
	PortMapper *portmap.Client
	// RelayOnly gathers relayed candidates alone: no host socket is
	// bound and no server-reflexive candidate is asked for, so every
	// path goes through a TURN server. It needs TURNServers.
	RelayOnly bool

	// Trickle, if set, receives each candidate as soon as it is found
	// (RFC 8838), then once more with end true and a zero Candidate: the
	// end of candidates (RFC 8838, Section 13). Gather calls it from its
	// own goroutine, one call at a time. Redundant candidates (RFC 8445,
	// Section 5.1.3) are not passed on.
	Trickle func(c Candidate, end bool)
}

// Validate reports a configuration error.
func (c *GatherConfig) Validate() error {
	switch {
	case c.DisableIPv4 && c.DisableIPv6:
		return errors.New("ice: GatherConfig: both address families disabled")
	case c.STUNTimeout < 0:
		return fmt.Errorf("ice: GatherConfig.STUNTimeout %v is negative", c.STUNTimeout)
	case c.TURNTimeout < 0:
		return fmt.Errorf("ice: GatherConfig.TURNTimeout %v is negative", c.TURNTimeout)
	case c.RelayOnly && len(c.TURNServers) == 0:
		return errors.New("ice: GatherConfig: RelayOnly needs TURNServers")
	}
	if err := c.PortRange.validate(); err != nil {
		return err
	}
	for i := range c.TURNServers {
		if err := c.TURNServers[i].Validate(); err != nil {
			return err
		}
	}
	for _, s := range c.STUNServers {
		if !s.IsValid() || s.Port() == 0 || s.Addr().IsUnspecified() {
			return fmt.Errorf("ice: GatherConfig: bad STUN server %v", s)
		}
	}
	return nil
}

// sock is one base: a host UDP socket bound to one host address, with the
// STUN client that shares it, or a TURN allocation whose relayed address
// is the base (RFC 8445, Section 5.1.1.2).
type sock struct {
	conn   *net.UDPConn       // host socket; nil for a relay
	client *stunclient.Client // host socket's STUN client; nil for a relay
	relay  *turnclient.Relay  // relay; nil for a host socket
	out    chan outPacket     // relay: packets for its writer goroutine
	queue  *udpio.Queue       // host socket: Conn.Write's datagrams, sent in batches
	reader *udpio.Conn        // host socket: conn, read in batches
	stop   chan struct{}      // closed by close, ends the writer goroutine (relay) or the queue's
	// flushed is closed when a host socket's queue has sent its last
	// datagrams after stop; close waits for it before closing conn.
	flushed chan struct{}
	addr    netip.AddrPort // bound or relayed address, unmapped, zone kept
	pref    uint32         // local preference, RFC 8445, Section 5.1.2.1
	gen     int            // gathering generation: 0 first, then one per Regather
	pm      portmapSlot    // host socket: its port mapping, if any
}

// outPacket is a packet a relay's writer sends.
type outPacket struct {
	b  []byte
	to netip.AddrPort
}

// send writes b to to, and may block: a relay's first packet to a new
// peer IP waits for its permission (RFC 8656, Section 9).
func (s *sock) send(b []byte, to netip.AddrPort) error {
	if s.relay != nil {
		_, err := s.relay.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.conn.WriteToUDPAddrPort(b, to)
	return err
}

// post sends b to to without blocking: a relay queues it for its writer
// goroutine and drops it when the queue is full. It reports whether b
// went out or was queued. b must not be modified afterwards.
func (s *sock) post(b []byte, to netip.AddrPort) bool {
	if s.relay == nil {
		_, err := s.conn.WriteToUDPAddrPort(b, to)
		return err == nil
	}
	select {
	case s.out <- outPacket{b, to}:
		return true
	default:
		return false
	}
}

// read reads one packet: from the host socket, or what a peer sent to the
// relayed address.
func (s *sock) read(b []byte) (int, netip.AddrPort, error) {
	if s.relay == nil {
		return s.conn.ReadFromUDPAddrPort(b)
	}
	return s.relay.ReadFromUDPAddrPort(b)
}

// close releases the socket or the allocation.
func (s *sock) close() {
	if s.relay != nil {
		close(s.stop)
		s.relay.Close()
		return
	}
	close(s.stop)
	<-s.flushed
	s.pm.close()
	s.client.Close()
	s.conn.Close()
}

// Gather binds one UDP socket per usable host address, asks the STUN
// servers for server-reflexive candidates over those sockets, and returns
// the candidates without redundant ones (RFC 8445, Sections 5.1.1 and
// 5.1.3), emitting each through GatherConfig.Trickle as it is found. It
// starts the Agent's goroutines, which Close stops. Gathering runs once:
// later calls wait for the first and return its result. An error other than
// ErrNoCandidates or a closed Agent is ctx's.
func (a *Agent) Gather(ctx context.Context) ([]Candidate, error) {
	a.gathering.once.Do(func() {
		gathered, err := a.gather(ctx, 0)
		a.mu.Lock()
		a.gathering.cands, a.gathering.err = gathered, err
		a.mu.Unlock()
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.gathering.cands), a.gathering.err
}

// gather gathers the candidates of generation gen on new sockets; the
// first generation also starts the loop.
func (a *Agent) gather(ctx context.Context, gen int) ([]Candidate, error) {
	gc := &a.cfg.Gather
	emit := func(c Candidate, end bool) {
		if gc.Trickle != nil {
			gc.Trickle(c, end)
		}
	}
	var cands []Candidate
	if !gc.RelayOnly {
		addrs, err := hostAddrs(gc)
		if err != nil {
			return nil, fmt.Errorf("ice: gather: %w", err)
		}
		prefs := LocalPreferences(addrs)
		for i, ip := range addrs {
			s, err := a.bind(ip, prefs[i], gen)
			if errors.Is(err, net.ErrClosed) {
				return nil, a.opErr("gather", nil, net.ErrClosed)
			}
			if err != nil {
				a.log.Warn("ice: gather: cannot bind", "addr", ip, "err", err)
				continue
			}
			c := Candidate{
				Foundation: Foundation(TypeHost, ip, netip.Addr{}, TransportUDP),
				Component:  1,
				Transport:  TransportUDP,
				Priority:   Priority(TypeHost.Preference(), s.pref, 1),
				Addr:       s.addr,
				Type:       TypeHost,
				Base:       s.addr,
				Origin:     OriginHost,
			}
			cands = append(cands, c)
			emit(c, false)
		}
	}
	if len(cands) == 0 && len(gc.TURNServers) == 0 {
		return nil, fmt.Errorf("%w: no usable host address", ErrNoCandidates)
	}
	if gen == 0 && !a.spawn(a.loop) {
		return nil, a.opErr("gather", nil, net.ErrClosed)
	}
	cands, err := a.gatherServers(ctx, gen, cands, emit)
	emit(Candidate{}, true)
	a.log.Info("ice: gathered", "candidates", len(cands))
	if err == nil && len(cands) == 0 {
		err = a.noCandidates(gen)
	}
	return cands, err
}

// gatherServers runs one Binding per host socket and STUN server of its
// family (RFC 8445, Section 5.1.1.2), and one allocation per TURN server,
// all at once, and adds the server-reflexive and relayed candidates that
// are not redundant as they come in.
func (a *Agent) gatherServers(ctx context.Context, gen int, cands []Candidate, emit func(Candidate, bool)) ([]Candidate, error) {
	socks := a.socks.filter(func(s *sock) bool { return s.gen == gen && s.relay == nil })
	gc := &a.cfg.Gather
	timeout := gc.STUNTimeout
	if timeout == 0 {
		timeout = DefaultSTUNTimeout
	}
	type result struct {
		c      Candidate
		ok     bool           // c is a candidate
		fail   *GatherFailure // a server's failure, reported in AgentStats
		s      *sock          // the host socket of a STUN or port-mapping result
		mapped bool           // a port mapping's result
	}
	// Room for every result: a Trickle callback below may call Close,
	// which waits for these goroutines, so they must never block on send.
	results := make(chan result, len(socks)*(len(gc.STUNServers)+1)+len(gc.TURNServers))
	gate := newPortmapGate(a)
	n := 0
	for _, s := range socks {
		if gc.RelayOnly {
			break
		}
		for _, server := range gc.STUNServers {
			server = netx.Unmap(server)
			if server.Addr().Is4() != s.addr.Addr().Is4() {
				continue
			}
			ok := a.spawn(func() {
				c, err := a.srflx(ctx, s, server, timeout)
				var f *GatherFailure
				if err != nil {
					a.log.Info("ice: gather: STUN Binding failed", "server", server, "base", s.addr, "err", err)
					f = &GatherFailure{URI: stunURI(server), Op: "binding", Base: s.addr, Err: err}
				}
				results <- result{c: c, ok: err == nil, fail: f, s: s}
			})
			if !ok {
				break
			}
			gate.expect(s)
			n++
		}
		if gc.PortMapper != nil && s.addr.Addr().Is4() && a.spawn(func() {
			c, err := a.portmapped(ctx, s)
			if err != nil {
				a.log.Debug("ice: gather: no port mapping", "base", s.addr, "err", err)
			}
			results <- result{c: c, ok: err == nil, s: s, mapped: true}
		}) {
			n++
		}
	}
	for i := range gc.TURNServers {
		ts := gc.TURNServers[i]
		ok := a.spawn(func() {
			c, err := a.allocate(ctx, &ts, MaxLocalPreference-uint32(min(i, MaxLocalPreference)), gen)
			var f *GatherFailure
			if err != nil {
				a.log.Info("ice: gather: TURN allocation failed", "server", ts.Addr, "err", err)
				f = &GatherFailure{URI: ts.URI(), Op: "allocate", Err: err}
			}
			results <- result{c: c, ok: err == nil, fail: f}
		})
		if !ok {
			break
		}
		n++
	}
	add := func(c Candidate) {
		pruned := PruneRedundant(append(slices.Clone(cands), c))
		if len(pruned) == len(cands) {
			a.log.Debug("ice: gather: redundant candidate", "addr", c.Addr, "base", c.Base, "origin", c.Origin)
			markPortMapped(cands, c)
			return
		}
		cands = pruned
		emit(c, false)
	}
	var fails []GatherFailure
	for range n {
		r := <-results
		if r.fail != nil {
			fails = append(fails, *r.fail)
		}
		switch {
		case r.mapped && r.ok:
			if c, ok := gate.mapped(r.s, r.c); ok {
				add(c)
			}
		case r.s != nil && !r.mapped:
			if c, ok := gate.stun(r.s, r.c, r.ok); ok {
				add(c)
			}
		}
		if r.ok && !r.mapped {
			add(r.c)
		}
	}
	a.mu.Lock()
	if gen == a.gathering.gen {
		a.gathering.failures = fails
	}
	a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return cands, fmt.Errorf("ice: gather: %w", err)
	}
	return cands, nil
}

// srflx asks server for the mapping of socket s, RFC 8445, Section
// 5.1.1.2.
func (a *Agent) srflx(ctx context.Context, s *sock, server netip.AddrPort, timeout time.Duration) (Candidate, error) {
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := s.client.Binding(bctx, server)
	if err != nil {
		return Candidate{}, err
	}
	return Candidate{
		Foundation: Foundation(TypeServerReflexive, s.addr.Addr(), server.Addr(), TransportUDP),
		Component:  1,
		Transport:  TransportUDP,
		Priority:   Priority(TypeServerReflexive.Preference(), s.pref, 1),
		Addr:       r.Mapped,
		Type:       TypeServerReflexive,
		Related:    s.addr,
		Base:       s.addr,
		Origin:     OriginSTUN,
	}, nil
}

// gatherRetransmit is the schedule of server-reflexive Bindings: a 250 ms
// RTO (libwebrtc's initial STUN RTO) sends 4 requests within
// DefaultSTUNTimeout (at 0, 0.25, 0.75 and 1.75 s) instead of the 3 of RFC
// 8489's 500 ms, so that a lossy path (20% each way) leaves an agent
// without its srflx candidate in under 2% of gatherings rather than 5%. A
// deliberate departure from RFC 8489's "SHOULD be greater than 500 ms":
// these are a few packets to servers the user named, not a flood.
var gatherRetransmit = stunclient.Retransmit{RTO: 250 * time.Millisecond}

// socketBuffer is the receive and send buffer asked for on each host
// socket: room for a burst of a few thousand full-size datagrams, so that
// a bulk transfer over the Conn (QUIC, say) is not cut short by datagrams
// the kernel drops while the read loop waits for a CPU. The kernel caps
// it at net.core.rmem_max and wmem_max unless the process may override
// them (CAP_NET_ADMIN); quic-go asks the same of its own sockets.
const socketBuffer = 4 << 20

// bind opens the socket of one host address and starts its read loop.
func (a *Agent) bind(ip netip.Addr, pref uint32, gen int) (*sock, error) {
	network := "udp6"
	if ip.Is4() {
		network = "udp4"
	}
	conn, err := listenHost(network, ip, a.cfg.Gather.PortRange)
	if err != nil {
		return nil, err
	}
	udpio.SetBuffers(conn, socketBuffer, socketBuffer)
	s := &sock{conn: conn, addr: netx.AddrPort(conn.LocalAddr()), pref: pref, gen: gen,
		stop: make(chan struct{}), flushed: make(chan struct{})}
	if s.queue, err = newWriteQueue(conn, network == "udp6"); err != nil {
		conn.Close()
		return nil, err
	}
	if s.reader, err = udpio.Wrap(conn, network == "udp6"); err != nil {
		conn.Close()
		return nil, err
	}
	write := func(b []byte, to netip.AddrPort) error {
		_, err := conn.WriteToUDPAddrPort(b, to)
		return err
	}
	if s.client, err = stunclient.NewShared(write, s.addr, stunclient.Config{Logger: a.cfg.Logger, Retransmit: gatherRetransmit}); err != nil {
		conn.Close()
		return nil, err
	}
	if !a.socks.add(s, a.readLoop, a.writeQueueLoop) {
		s.client.Close()
		conn.Close()
		return nil, net.ErrClosed
	}
	return s, nil
}

// spawn runs f on a goroutine that Close waits for, unless the Agent is
// closed.
func (a *Agent) spawn(f func()) bool { return a.socks.spawn(f) }

// hostAddrs lists the addresses host candidates are gathered on, RFC 8445,
// Section 5.1.1.1, filtered by the configuration.
func hostAddrs(gc *GatherConfig) ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 ||
			(ifc.Flags&net.FlagLoopback != 0 && !gc.IncludeLoopback) ||
			(gc.InterfaceFilter != nil && !gc.InterfaceFilter(ifc)) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.Is6() && ip.IsLinkLocalUnicast() {
				ip = ip.WithZone(ifc.Name)
			}
			if usableHost(gc, ip) && !slices.Contains(out, ip) {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// usableHost applies the address rules of GatherConfig.
func usableHost(gc *GatherConfig, ip netip.Addr) bool {
	switch {
	case !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast():
		return false
	case ip.Is4() && gc.DisableIPv4, ip.Is6() && gc.DisableIPv6:
		return false
	case ip.IsLoopback() && !gc.IncludeLoopback:
		return false
	case ip.IsLinkLocalUnicast() && !gc.IncludeLinkLocal:
		return false
	case gc.IPFilter != nil && !gc.IPFilter(ip):
		return false
	}
	return true
}
