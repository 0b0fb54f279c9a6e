package portmap

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// pcpRetransmit is the first retransmission interval of a PCP request,
// doubled after each. RFC 6887, Section 8.1.1, asks for 3 s; the router is
// one hop away and the whole search has a budget of a few hundred
// milliseconds (Config.Timeout), so this client retransmits sooner: a
// deliberate departure, a handful of packets to the gateway.
const pcpRetransmit = 50 * time.Millisecond

// pcpMapper holds one PCP MAP mapping, RFC 6887, Section 11.
type pcpMapper struct {
	gw    netip.Addr
	local netip.AddrPort
	nonce [12]byte       // the same for renewals and the deletion, Section 11.1
	ext   netip.AddrPort // assigned; suggested again when renewing, Section 11.2.1
}

func newNonce() [12]byte {
	var n [12]byte
	_, _ = rand.Read(n[:]) // crypto/rand.Read does not fail
	return n
}

func (p *pcpMapper) add(ctx context.Context, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	m := pcpMap{Nonce: p.nonce, Protocol: protoUDP, InternalPort: p.local.Port(), Port: p.local.Port()}
	if p.ext.IsValid() {
		m.Port, m.Addr = p.ext.Port(), p.ext.Addr()
	}
	r, err := pcpExchange(ctx, p.gw, p.local.Addr(), appendPCPMapRequest(nil, p.local.Addr(), uint32(lifetime/time.Second), &m), p.match)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	if !r.Map.Addr.Is4() || r.Map.Port == 0 || r.Lifetime == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("portmap: PCP MAP success without a usable mapping: %v:%d for %ds", r.Map.Addr, r.Map.Port, r.Lifetime)
	}
	p.ext = netip.AddrPortFrom(r.Map.Addr, r.Map.Port)
	return p.ext, time.Duration(r.Lifetime) * time.Second, nil
}

// match accepts the MAP response to this mapping's requests, Section
// 11.3: same opcode, nonce, protocol and internal port.
func (p *pcpMapper) match(r *pcpResp) bool {
	return r.Opcode == pcpOpMap && (r.Result != PCPSuccess ||
		(r.Map.Nonce == p.nonce && r.Map.Protocol == protoUDP && r.Map.InternalPort == p.local.Port()))
}

// del deletes the mapping: a MAP request with lifetime 0, Section 15.
func (p *pcpMapper) del(ctx context.Context) error {
	m := pcpMap{Nonce: p.nonce, Protocol: protoUDP, InternalPort: p.local.Port()}
	_, err := pcpExchange(ctx, p.gw, p.local.Addr(), appendPCPMapRequest(nil, p.local.Addr(), 0, &m), p.match)
	return err
}

// pcpAnnounce sends an ANNOUNCE request (Section 14.1) and reports the
// server's epoch: whether the gateway speaks PCP at all.
func pcpAnnounce(ctx context.Context, gw, local netip.Addr) (uint32, error) {
	r, err := pcpExchange(ctx, gw, local, appendPCPAnnounceRequest(nil, local), func(r *pcpResp) bool { return r.Opcode == pcpOpAnnounce })
	if err != nil {
		return 0, err
	}
	return r.Epoch, nil
}

// pcpExchange sends req from local to gw's PCP port, retransmitting with
// doubling intervals until a response that match accepts arrives or ctx
// ends. A response with an error result becomes a *PCPError; a NAT-PMP
// answer (version 0) becomes errNotPCP. Malformed packets are dropped.
func pcpExchange(ctx context.Context, gw, local netip.Addr, req []byte, match func(*pcpResp) bool) (pcpResp, error) {
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pcpPort)))
	if err != nil {
		return pcpResp{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, pcpMaxLen+4)
	rto := pcpRetransmit
	for {
		if _, err := conn.Write(req); err != nil {
			return pcpResp{}, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(rto))
		if ctx.Err() != nil {
			return pcpResp{}, ctx.Err()
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if ctx.Err() != nil {
					return pcpResp{}, ctx.Err()
				}
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return pcpResp{}, err // ECONNREFUSED: nothing listens on the PCP port
			}
			r, err := parsePCPResponse(buf[:n])
			if errors.Is(err, errNotPCP) {
				return pcpResp{}, err
			}
			if err != nil || !match(&r) {
				continue
			}
			if r.Result != PCPSuccess {
				return r, &PCPError{Code: r.Result, Lifetime: r.Lifetime}
			}
			return r, nil
		}
		rto *= 2
	}
}
