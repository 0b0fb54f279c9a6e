package turncheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// checkRelayData sends c.Count datagrams from relay to a second
// allocation (or --peer) and back, and reports round-trip time and loss.
func (c *Config) relayData(ctx context.Context, cfg turnclient.Config, a *turnclient.Relay) (string, error) {
	cx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var target netip.AddrPort
	var b *turnclient.Relay
	if c.Peer != "" {
		p, err := netip.ParseAddrPort(c.Peer)
		if err != nil {
			return "", fmt.Errorf("--peer: %w", err)
		}
		target = p
	} else {
		var err error
		b, err = turnclient.Allocate(cx, cfg)
		if err != nil {
			return "", fmt.Errorf("second allocation: %w", Explain(err, a.Server()))
		}
		defer b.Close()
		target = b.Relayed()[0]
		// Permissions both ways: B must accept A's datagrams.
		if err := b.CreatePermission(cx, a.Relayed()[0].Addr()); err != nil {
			return "", fmt.Errorf("permission for the first relay on the second: %w", WithForbiddenHint(Explain(err, a.Server()), false))
		}
		if err := a.CreatePermission(cx, target.Addr()); err != nil {
			return "", fmt.Errorf("permission for the second relay on the first: %w", WithForbiddenHint(Explain(err, a.Server()), false))
		}
		// The second relay echoes.
		done := make(chan struct{})
		defer func() { b.Close(); <-done }()
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, from, err := b.ReadFrom(buf)
				if err != nil {
					return
				}
				b.WriteTo(buf[:n], from)
			}
		}()
	}
	var rtts []time.Duration
	buf := make([]byte, 2048)
	to := net.UDPAddrFromAddrPort(target)
	for i := range c.Count {
		if cx.Err() != nil {
			break
		}
		msg := fmt.Appendf(nil, "icebreaker turn check %d", i)
		sent := time.Now()
		if _, err := a.WriteTo(msg, to); err != nil {
			return "", WithForbiddenHint(Explain(err, a.Server()), c.Peer != "")
		}
		a.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := a.ReadFrom(buf)
			if err != nil {
				break // lost
			}
			if string(buf[:n]) == string(msg) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
	}
	a.SetReadDeadline(time.Time{})
	lost := c.Count - len(rtts)
	if len(rtts) == 0 {
		return "", fmt.Errorf("no datagram came back through the relay (%d sent): the server or a firewall drops relayed traffic", c.Count)
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	st := a.Stats()
	detail := fmt.Sprintf("%d/%d datagrams back (loss %.0f%%), RTT median %s max %s, via %d Send indications and %d ChannelData",
		len(rtts), c.Count, 100*float64(lost)/float64(c.Count),
		stunclient.FormatDuration(rtts[len(rtts)/2]), stunclient.FormatDuration(rtts[len(rtts)-1]),
		st.SentIndications, st.SentChannelData)
	if lost > 0 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}

// tcpCheckExchanges bounds the round trips of the tcp-relay step.
const tcpCheckExchanges = 10

// checkTCPRelay tests RFC 6062 TCP allocations: two of them, over TCP (or
// TLS) control connections, the first connecting to the relayed address
// of the second, which accepts and echoes; it reports the round-trip time
// of up to tcpCheckExchanges messages. A server without TCP allocations
// (442) makes the step skipped.
func (c *Config) tcpRelay(ctx context.Context, cfg turnclient.Config) (string, error) {
	cx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	overUDP := cfg.Transport == turnclient.UDP
	if overUDP {
		cfg.Transport = turnclient.TCP // a TCP allocation needs a stream control connection
	}
	a, err := turnclient.AllocateTCP(cx, cfg)
	if se, ok := errors.AsType[*stun.Error](err); ok && se.Code == stun.CodeUnsupportedTransportProtocol {
		return "", &skipStep{"server does not offer TCP allocations (442)"}
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && overUDP && oe.Op == "dial" {
		// A UDP-only server offers no TCP allocation on this port.
		return "", &skipStep{fmt.Sprintf("no TCP listener on %s, so no TCP allocation to test (%v); check turn:...?transport=tcp to test one", cfg.Server, oe.Err)}
	}
	if err != nil {
		return "", fmt.Errorf("TCP allocation: %w", Explain(err, turnServerOf(cfg)))
	}
	defer a.Close()
	b, err := turnclient.AllocateTCP(cx, cfg)
	if err != nil {
		return "", fmt.Errorf("second TCP allocation: %w", Explain(err, a.Server()))
	}
	if err := b.CreatePermission(cx, a.Relayed().Addr()); err != nil {
		b.Close()
		return "", fmt.Errorf("permission for the first relay on the second: %w", Explain(err, a.Server()))
	}

	// The second allocation accepts one connection and echoes it.
	actx, acancel := context.WithCancel(cx)
	peers := make(chan netip.AddrPort, 1)
	done := make(chan error, 1)
	go func() {
		conn, peer, err := b.Accept(actx)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		peers <- peer
		_, err = io.Copy(conn, conn)
		done <- err
	}()
	defer func() { acancel(); b.Close(); <-done }()

	conn, err := a.Dial(cx, b.Relayed())
	if err != nil {
		if errors.Is(err, turnclient.ErrForbidden) {
			return "", errors.New("the server forbids relaying to its own relayed addresses (403 on Connect)")
		}
		if errors.Is(err, turnclient.ErrConnectFailed) {
			return "", errors.New("the server could not connect its TCP relay to the second relayed address (447)")
		}
		return "", fmt.Errorf("Connect to the second relayed address: %w", Explain(err, a.Server()))
	}
	defer conn.Close()
	if dl, ok := cx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var peer netip.AddrPort
	select {
	case peer = <-peers:
	case err := <-done:
		done <- err // for the deferred wait
		return "", fmt.Errorf("the second TCP allocation got no connection: %w", Explain(err, a.Server()))
	case <-cx.Done():
		return "", errors.New("the second TCP allocation got no ConnectionAttempt in time: the server does not relay TCP between its own relayed addresses")
	}
	rtts := make([]time.Duration, 0, tcpCheckExchanges)
	back := make([]byte, 64)
	for i := range min(c.Count, tcpCheckExchanges) {
		msg := fmt.Appendf(nil, "icebreaker turn check tcp %d", i)
		sent := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return "", fmt.Errorf("writing through the TCP relay: %w", Explain(err, a.Server()))
		}
		if _, err := io.ReadFull(conn, back[:len(msg)]); err != nil {
			return "", fmt.Errorf("reading the echo through the TCP relay (%d of %d came back): %w", i, min(c.Count, tcpCheckExchanges), Explain(err, a.Server()))
		}
		if string(back[:len(msg)]) != string(msg) {
			return "", fmt.Errorf("the TCP relay corrupted the data: sent %q, got back %q", msg, back[:len(msg)])
		}
		rtts = append(rtts, time.Since(sent))
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return fmt.Sprintf("relayed %s connected to relayed %s (seen from %s), %d messages echoed, RTT median %s max %s",
		a.Relayed(), b.Relayed(), peer, len(rtts),
		stunclient.FormatDuration(rtts[len(rtts)/2]), stunclient.FormatDuration(rtts[len(rtts)-1])), nil
}

// turnServerOf returns cfg's server address for error messages.
func turnServerOf(cfg turnclient.Config) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(cfg.Server)
	return ap
}
