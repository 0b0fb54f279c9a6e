package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// pmpMapper holds one NAT-PMP mapping (RFC 6886, Section 3.3) through
// github.com/jackpal/go-nat-pmp. Its default client retries for about two
// minutes; every call here uses its timeout constructor with what is left
// of the context's budget.
type pmpMapper struct {
	gw    netip.Addr
	local netip.AddrPort
	ext   netip.AddrPort // assigned; asked for again when renewing
}

// client returns a NAT-PMP client whose calls end at ctx's deadline.
func (p *pmpMapper) client(ctx context.Context) (*natpmp.Client, error) {
	d, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("portmap: NAT-PMP call without a deadline")
	}
	left := time.Until(d)
	if left <= 0 || ctx.Err() != nil {
		return nil, context.DeadlineExceeded
	}
	return natpmp.NewClientWithLocalAndTimeout(net.IP(p.gw.AsSlice()), net.IP(p.local.Addr().AsSlice()), left), nil
}

func (p *pmpMapper) add(ctx context.Context, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	c, err := p.client(ctx)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	want := p.local.Port()
	if p.ext.IsValid() {
		want = p.ext.Port()
	}
	r, err := c.AddPortMapping("udp", int(p.local.Port()), int(want), int(lifetime/time.Second))
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("portmap: NAT-PMP: %w", err)
	}
	if r.MappedExternalPort == 0 || r.PortMappingLifetimeInSeconds == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("portmap: NAT-PMP mapped port %d for %ds", r.MappedExternalPort, r.PortMappingLifetimeInSeconds)
	}
	addr := p.ext.Addr()
	if !addr.IsValid() {
		// RFC 6886, Section 3.2: the external address is its own request.
		if c, err = p.client(ctx); err != nil {
			return netip.AddrPort{}, 0, err
		}
		e, err := c.GetExternalAddress()
		if err != nil {
			return netip.AddrPort{}, 0, fmt.Errorf("portmap: NAT-PMP external address: %w", err)
		}
		addr = netip.AddrFrom4(e.ExternalIPAddress)
	}
	p.ext = netip.AddrPortFrom(addr, r.MappedExternalPort)
	return p.ext, time.Duration(r.PortMappingLifetimeInSeconds) * time.Second, nil
}

// del deletes the mapping: lifetime 0 and external port 0, RFC 6886,
// Section 3.4.
func (p *pmpMapper) del(ctx context.Context) error {
	c, err := p.client(ctx)
	if err != nil {
		return err
	}
	if _, err := c.AddPortMapping("udp", int(p.local.Port()), 0, 0); err != nil {
		return fmt.Errorf("portmap: NAT-PMP: %w", err)
	}
	return nil
}

// pmpExternal asks for the external address alone (RFC 6886, Section
// 3.2): whether the gateway speaks NAT-PMP.
func pmpExternal(ctx context.Context, gw, local netip.Addr) (netip.Addr, error) {
	p := &pmpMapper{gw: gw, local: netip.AddrPortFrom(local, 0)}
	c, err := p.client(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	e, err := c.GetExternalAddress()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: NAT-PMP: %w", err)
	}
	return netip.AddrFrom4(e.ExternalIPAddress), nil
}
