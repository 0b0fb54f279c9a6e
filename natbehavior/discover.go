package natbehavior

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// ResolveError reports a server name that could not be resolved, or that
// has no address of the wanted family.
type ResolveError struct {
	Host string
	Err  error
}

func (e *ResolveError) Error() string { return fmt.Sprintf("cannot resolve %s: %v", e.Host, e.Err) }

func (e *ResolveError) Unwrap() error { return e.Err }

// Discover runs the RFC 5780 tests against server ("host", "host:port",
// "1.2.3.4", "[2001:db8::1]:3478"; the port defaults to 3478) and returns the
// report. It owns every socket it opens and closes them, and waits for their
// reader goroutines, before it returns. Errors: a *ResolveError when the
// name does not resolve; a *stunclient.TimeoutError (wrapped) when the
// server never answered (no UDP connectivity); the context's error when ctx
// ends first.
func Discover(ctx context.Context, server string, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	addr, err := Resolve(ctx, cfg.Network, server)
	if err != nil {
		return nil, err
	}
	p, err := NewProber(addr, cfg)
	if err != nil {
		return nil, err
	}
	d := &driver{
		cfg:    cfg,
		server: addr,
		p:      p,
		socks:  map[Socket]*net.UDPConn{},
		in:     make(chan packet, 64),
		quit:   make(chan struct{}),
		log:    cfg.Logger,
	}
	defer d.close()
	if err := d.run(ctx); err != nil {
		return nil, err
	}
	return p.Report()
}

// Resolve turns "host[:port]" into an address of network ("udp", "udp4" or
// "udp6"), with DefaultPort when there is no port. Errors are
// *ResolveError.
func Resolve(ctx context.Context, network, server string) (netip.AddrPort, error) {
	host, port := server, uint16(DefaultPort)
	if h, ps, err := net.SplitHostPort(server); err == nil {
		n, perr := strconv.ParseUint(ps, 10, 16)
		if perr != nil || n == 0 {
			return netip.AddrPort{}, &ResolveError{Host: server, Err: fmt.Errorf("invalid port %q", ps)}
		}
		host, port = h, uint16(n)
	} else if len(server) > 2 && server[0] == '[' && server[len(server)-1] == ']' {
		host = server[1 : len(server)-1] // "[::1]" without a port
	}
	if host == "" {
		return netip.AddrPort{}, &ResolveError{Host: server, Err: errors.New("no host name")}
	}
	want, family := "ip", "IP"
	switch network {
	case "udp4":
		want, family = "ip4", "IPv4"
	case "udp6":
		want, family = "ip6", "IPv6"
	}
	fits := func(a netip.Addr) bool { return (want != "ip4" || a.Is4()) && (want != "ip6" || a.Is6()) }
	if a, err := netip.ParseAddr(host); err == nil {
		if a = a.Unmap(); !fits(a) {
			return netip.AddrPort{}, &ResolveError{Host: host, Err: fmt.Errorf("no %s address", family)}
		}
		return netip.AddrPortFrom(a, port), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, want, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			err = errors.New("no such host")
		}
		return netip.AddrPort{}, &ResolveError{Host: host, Err: err}
	}
	for _, a := range addrs {
		if a = a.Unmap(); fits(a) {
			return netip.AddrPortFrom(a, port), nil
		}
	}
	return netip.AddrPort{}, &ResolveError{Host: host, Err: fmt.Errorf("no %s address", family)}
}

// packet is a datagram read by a socket's reader goroutine.
type packet struct {
	sock Socket
	from netip.AddrPort
	b    []byte
}

// driver owns the sockets of one Discover call and feeds a Prober.
type driver struct {
	cfg    Config
	server netip.AddrPort
	p      *Prober
	log    *slog.Logger

	socks map[Socket]*net.UDPConn // opened on first use; only run touches it
	local netip.Addr              // the IP address every socket uses
	in    chan packet
	quit  chan struct{} // closed by close: readers stop
	wg    sync.WaitGroup
	once  sync.Once
}

// run drives the prober until it is done or ctx ends.
func (d *driver) run(ctx context.Context) error {
	var out []Datagram
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var next time.Time
		out, next = d.p.Poll(time.Now(), out[:0])
		for _, dg := range out {
			if err := d.send(dg); err != nil {
				return err
			}
		}
		if d.p.Done() {
			return nil
		}
		timer.Reset(time.Until(next))
		select {
		case pk := <-d.in:
			d.p.Receive(pk.sock, pk.from, pk.b, time.Now())
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("natbehavior: %w", context.Cause(ctx))
		}
	}
}

// send writes one datagram, opening its socket first if needed. A failure
// to open a socket, or to send the first request to the server, ends the
// run; other send errors are the same as a lost packet.
func (d *driver) send(dg Datagram) error {
	c, err := d.socket(dg.Socket)
	if err != nil {
		return err
	}
	if _, err := c.WriteToUDPAddrPort(dg.Packet, dg.To); err != nil {
		if dg.Socket == sockMapping && dg.To == d.server {
			return fmt.Errorf("natbehavior: send to %s: %w", dg.To, err)
		}
		if d.log != nil {
			d.log.Debug("natbehavior: send failed", "socket", int(dg.Socket), "to", dg.To, "err", err)
		}
		return nil
	}
	if d.log != nil && d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("natbehavior: sent", "socket", int(dg.Socket), "to", dg.To, "bytes", len(dg.Packet))
	}
	return nil
}

// socket returns socket s, opening it on first use.
func (d *driver) socket(s Socket) (*net.UDPConn, error) {
	if c := d.socks[s]; c != nil {
		return c, nil
	}
	if !d.local.IsValid() {
		d.local = d.cfg.Local.Addr()
		if !d.local.IsValid() {
			d.local = netip.IPv4Unspecified()
			if d.server.Addr().Is6() {
				d.local = netip.IPv6Unspecified()
			}
		}
	}
	network := "udp4"
	if d.server.Addr().Is6() {
		network = "udp6"
	}
	if d.local.Is4() != d.server.Addr().Is4() {
		return nil, fmt.Errorf("natbehavior: local address %s and server %s are of different address families", d.local, d.server)
	}
	bind := netip.AddrPortFrom(d.local, 0)
	if s == sockMapping {
		bind = netip.AddrPortFrom(d.local, d.cfg.Local.Port())
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(bind))
	if err != nil {
		return nil, fmt.Errorf("natbehavior: open a UDP socket on %s: %w", bind, err)
	}
	d.socks[s] = c
	la := netx.AddrPort(c.LocalAddr())
	if la.Addr().IsUnspecified() {
		if src, ok := d.sourceFor(network); ok {
			la = netip.AddrPortFrom(src, la.Port())
		}
	}
	d.p.SetLocalAddr(s, la)
	d.wg.Add(1)
	go d.read(s, c)
	return c, nil
}

// sourceFor returns the source address the routing table picks for the
// server: connecting a UDP socket sends nothing but chooses it.
func (d *driver) sourceFor(network string) (netip.Addr, bool) {
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(d.server))
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	return netx.AddrPort(c.LocalAddr()).Addr(), true
}

// read is the reader goroutine of one socket; close stops it.
func (d *driver) read(s Socket, c *net.UDPConn) {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors and the like: nothing to hand over; the
			// prober's timers decide.
			select {
			case <-d.quit:
				return
			default:
				continue
			}
		}
		pk := packet{sock: s, from: from, b: append([]byte(nil), buf[:n]...)}
		select {
		case d.in <- pk:
		case <-d.quit:
			return
		}
	}
}

// close closes every socket and waits for the readers. It may be called
// more than once.
func (d *driver) close() {
	d.once.Do(func() {
		close(d.quit)
		for _, c := range d.socks {
			c.Close()
		}
		d.wg.Wait()
	})
}
