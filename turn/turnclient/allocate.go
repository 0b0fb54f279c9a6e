package turnclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn"
)

// streamRetransmit makes a shared (UDP-style) stunclient behave as RFC
// 8489, Section 6.2.2 asks over TCP and TLS: one transmission, then 39.5 s.
var streamRetransmit = stunclient.Retransmit{RTO: 500 * time.Millisecond, Rc: 1, Rm: 79}

// Allocate creates an allocation on the server of cfg and returns it as a
// Relay. RFC 8656, Section 7.1: it sends Allocate with REQUESTED-TRANSPORT
// UDP (and REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY for IPv6
// and Dual, LIFETIME when configured), answers the 401 challenge with the
// long-term credentials, retries on 438, and follows one 300
// ALTERNATE-SERVER (over TCP and TLS by dialling the alternate, whose TLS
// certificate must then be valid for ALTERNATE-DOMAIN if the 300 had one).
//
// ctx bounds the allocation only, not the Relay's life. Errors: a
// *stun.Error for an error response (wrapped with ErrQuotaReached or
// ErrInsufficientCapacity for 486 and 508), a *stunclient.TimeoutError when
// the server does not answer, a *stunclient.AlternateServerError for a
// redirection it will not follow, dial and TLS errors.
func Allocate(ctx context.Context, cfg Config) (*Relay, error) {
	return allocateProto(ctx, cfg, turn.ProtoUDP)
}

// allocateProto is Allocate with REQUESTED-TRANSPORT proto: UDP, or TCP
// for RFC 6062 (AllocateTCP).
func allocateProto(ctx context.Context, cfg Config, proto uint8) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Secret != "" {
		ttl := cfg.RESTTTL
		if ttl == 0 {
			ttl = DefaultRESTTTL
		}
		cfg.Username, cfg.Password = turn.RESTCredentials(cfg.Secret, cfg.RESTUser, time.Now().Add(ttl))
	}
	host, port, _ := cfg.hostPort()
	server, err := resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	r, err := allocate(ctx, cfg, host, server, proto)
	if se, ok := errors.AsType[*stun.Error](err); ok && se.Code == stun.CodeAllocationMismatch {
		// RFC 8656, Section 7.3: 437 says the server holds an
		// allocation on this 5-tuple already, one left by a client
		// that died before deleting it, on a port the kernel (or a
		// NAT) has given out again. A new socket or connection has a
		// new client transport address: try once more from there.
		if cfg.Logger != nil {
			cfg.Logger.Debug("turn: allocation mismatch (437), retrying from a new local port", "server", server)
		}
		r, err = allocate(ctx, cfg, host, server, proto)
	}
	alt, ok := errors.AsType[*stunclient.AlternateServerError](err)
	if !ok || cfg.Transport == UDP || !alt.Alternate.IsValid() || alt.Alternate == server {
		return r, err
	}
	// A stream cannot follow a 300 itself: dial the alternate once. RFC
	// 8489, Section 10: over TLS its certificate is validated against
	// ALTERNATE-DOMAIN when the 300 has one, else against the domain of
	// the first request.
	if alt.Domain != "" && cfg.Transport == TLS {
		host = alt.Domain
		tc := cfg.TLSConfig.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		tc.ServerName = alt.Domain
		cfg.TLSConfig = tc
	}
	r, err = allocate(ctx, cfg, host, alt.Alternate, proto)
	if alt2, ok := errors.AsType[*stunclient.AlternateServerError](err); ok && alt2.Alternate.IsValid() {
		// RFC 8489, Section 10: one redirection per request.
		return nil, fmt.Errorf("turn: %s redirected to %s, which redirects again: %w", server, alt.Alternate,
			&stunclient.AlternateServerError{Alternate: alt2.Alternate, Domain: alt2.Domain, Err: alt2.Err})
	}
	return r, err
}

// resolve looks host up (an IP is taken as is) and returns the first
// address.
func resolve(ctx context.Context, host string, port uint16) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), port), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("turn: resolving %s: %w", host, err)
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("turn: %s has no address", host)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), port), nil
}

func allocate(ctx context.Context, cfg Config, host string, server netip.AddrPort, proto uint8) (*Relay, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	queue := cfg.Queue
	if queue == 0 {
		queue = DefaultQueue
	}
	r := &Relay{
		cfg:  cfg,
		log:  log,
		core: newCore(DefaultBindAfter, defaultLifetime, time.Now()),
		in:   make(chan packet, queue),
		kick: make(chan struct{}, 1),
		host: host,
	}
	r.life.init()
	if proto == turn.ProtoTCP {
		// RFC 6062: ConnectionAttempt indications wait for Accept, and
		// permissions are kept for incoming connections (Section 5.3).
		r.attempts = make(chan attempt, queue)
		r.core.keepPermissions = true
	}
	r.server.Store(&server)
	if cfg.BindAfter > 0 {
		r.core.bindAfter = cfg.BindAfter
	}
	scfg := stunclient.Config{
		Retransmit:  cfg.Retransmit,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Software:    cfg.Software,
		Comprehends: comprehends,
		Logger:      cfg.Logger,
	}
	var local netip.AddrPort
	var write func([]byte, netip.AddrPort) error
	switch cfg.Transport {
	case UDP:
		network := "udp4"
		if server.Addr().Is6() {
			network = "udp6"
		}
		listen := cfg.listenUDP
		if listen == nil {
			listen = func(network string) (*net.UDPConn, error) { return net.ListenUDP(network, nil) }
		}
		c, err := listen(network)
		if err != nil {
			return nil, fmt.Errorf("turn: %w", err)
		}
		r.udp = c
		// Room for a burst of relayed data while the reader waits for
		// a CPU (the kernel caps it at net.core.rmem_max).
		udpio.SetBuffers(c, socketBuffer, socketBuffer)
		if r.queue, err = udpio.NewQueue(c, network == "udp6", queuedWrites); err != nil {
			c.Close()
			return nil, fmt.Errorf("turn: %w", err)
		}
		r.flushed = make(chan struct{})
		local = c.LocalAddr().(*net.UDPAddr).AddrPort()
		write = func(b []byte, to netip.AddrPort) error {
			_, err := c.WriteToUDPAddrPort(b, to)
			return err
		}
	default:
		c, err := dialStream(ctx, cfg, host, server)
		if err != nil {
			return nil, err
		}
		r.stream = c
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			local = a.AddrPort()
		}
		scfg.Retransmit = streamRetransmit
		scfg.NoRedirect = true // allocateProto dials the alternate
		write = func(b []byte, to netip.AddrPort) error {
			if to != server {
				return fmt.Errorf("turn: the connection goes to %s, not %s", server, to)
			}
			if dc := r.dataConnFor(b); dc != nil {
				_, err := dc.Write(b) // a ConnectionBind (RFC 6062)
				return err
			}
			return r.send(b, to)
		}
	}
	client, err := stunclient.NewShared(write, local, scfg)
	if err != nil {
		r.closeConn()
		return nil, err
	}
	r.client = client
	r.life.wg.Add(1)
	if r.udp != nil {
		r.life.wg.Add(1)
		go func() {
			defer r.life.wg.Done()
			defer close(r.flushed)
			r.queue.Run(r.life.closing)
		}()
		go r.readUDP()
	} else {
		go r.readStream()
	}

	req := turn.AllocateRequest{Transport: proto, Lifetime: cfg.Lifetime}
	switch cfg.Family {
	case IPv6:
		req.Family = turn.FamilyIPv6
	case Dual:
		req.AdditionalFamily = turn.FamilyIPv6
	}
	resp, err := client.Do(ctx, server, stun.MethodAllocate, func(b []byte, _ stun.TransactionID) []byte {
		return req.Append(b)
	})
	if err == nil {
		err = r.parseAllocation(resp)
	}
	if err != nil {
		r.life.close(func() error {
			client.Close()
			r.closeConn()
			r.life.wg.Wait()
			return nil
		})
		return nil, classify(err)
	}
	srv := resp.Server
	r.server.Store(&srv)
	r.mu.Lock()
	r.core.setLifetime(r.granted.lifetime, time.Now())
	r.mu.Unlock()
	r.life.goRefresher(r.refresher)
	log.Debug("turn: allocated", "server", srv, "relayed", r.granted.relayed, "lifetime", r.granted.lifetime)
	return r, nil
}

func (r *Relay) closeConn() {
	if r.udp != nil {
		r.udp.Close()
	}
	if r.stream != nil {
		r.stream.Close()
	}
}

// dialStream connects to server over TCP, then TLS if configured.
func dialStream(ctx context.Context, cfg Config, host string, server netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", server.String())
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	if cfg.Transport != TLS {
		return c, nil
	}
	tc := cfg.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	t := tls.Client(c, tc)
	if err := t.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("turn: TLS handshake with %s: %w", server, err)
	}
	return t, nil
}

// parseAllocation reads an Allocate success response. RFC 8656, Section
// 7.3.
func (r *Relay) parseAllocation(resp *stunclient.Response) error {
	m := &resp.Message
	for _, a := range m.Attrs {
		if a.Type != stun.AttrXORRelayedAddress {
			continue
		}
		ap, err := stun.ParseXORAddress(a.Value, m.TransactionID)
		if err != nil {
			return fmt.Errorf("turn: Allocate response: %w", err)
		}
		r.granted.relayed = append(r.granted.relayed, netx.Unmap(ap))
	}
	if len(r.granted.relayed) == 0 {
		return fmt.Errorf("turn: Allocate response without XOR-RELAYED-ADDRESS: %w", stun.ErrAttrNotFound)
	}
	// IPv4 first, so LocalAddr of a dual allocation is the IPv4 one.
	if len(r.granted.relayed) == 2 && r.granted.relayed[1].Addr().Is4() {
		r.granted.relayed[0], r.granted.relayed[1] = r.granted.relayed[1], r.granted.relayed[0]
	}
	r.granted.lifetime = defaultLifetime
	if v, ok := m.Get(stun.AttrLifetime); ok {
		if l, err := turn.ParseLifetime(v); err == nil {
			r.granted.lifetime = l
		}
	}
	if ap, err := m.XORMappedAddress(); err == nil {
		r.granted.mapped = netx.Unmap(ap)
	}
	return nil
}

// readStream is the read loop over TCP and TLS: STUN messages and padded
// ChannelData frames, back to back (RFC 8656, Section 12.5). It ends when
// the connection ends or loses its framing, which loses the allocation.
func (r *Relay) readStream() {
	defer r.life.wg.Done()
	br := bufio.NewReaderSize(r.stream, 64<<10)
	buf := make([]byte, 0, 1600)
	var msg stun.Message
	for {
		frame, err := readFrame(br, buf)
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("the server closed the connection: %w", err)
			}
			r.fail(fmt.Errorf("%w: %w", ErrAllocationLost, err))
			r.client.Close() // fail outstanding transactions now
			return
		}
		buf = frame[:0]
		r.handle(frame, r.Server(), &msg)
	}
}

// readFrame reads one STUN message or ChannelData frame (with padding),
// told apart by the first byte (stun.StreamFrame) and ChannelData framed
// by package turn's rule: the client binds channels 0x4000-0x4FFF only,
// so the server sends no other.
func readFrame(br *bufio.Reader, buf []byte) ([]byte, error) {
	want := 1
	var n int
	for n == 0 {
		hdr, err := br.Peek(want)
		if err != nil {
			if err == io.EOF && len(hdr) > 0 {
				err = io.ErrUnexpectedEOF
			}
			if len(hdr) > 0 {
				return nil, fmt.Errorf("turn: stream: %w", err)
			}
			return nil, err
		}
		var need int
		n, need, _, err = stun.StreamFrame(hdr, channelDataFramer)
		if err == nil && n == 0 && (need <= want || need > br.Size()) {
			err = fmt.Errorf("a header of %d bytes", need)
		}
		if err != nil {
			return nil, fmt.Errorf("turn: stream framing lost: %w", err)
		}
		want = need
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, fmt.Errorf("turn: stream: %w", err)
	}
	return buf, nil
}

// channelDataFramer frames the ChannelData the server sends: on the
// channels this client binds, 0x4000-0x4FFF.
var channelDataFramer = turn.StreamFramer(false)
