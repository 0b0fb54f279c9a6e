package portmap

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ProbeResult says which protocols the gateway answers.
type ProbeResult struct {
	Gateway netip.Addr
	Local   netip.Addr // this host's address on the gateway's link
	// PCP, NATPMP and UPnP report whether the gateway answered each
	// (PCP: an ANNOUNCE response; NAT-PMP: its external address; UPnP: an
	// SSDP answer and a WANIPConnection service that gave its external
	// address).
	PCP, NATPMP, UPnP bool
	// External is the external address NAT-PMP or UPnP reported (PCP
	// reports one only with a mapping), the zero Addr when neither did.
	External netip.Addr
	// Errs holds why each protocol that did not answer failed.
	Errs map[Protocol]error
}

// LocalAddr returns this host's first IPv4 address on the interface of the
// default route, the one a mapping for this host is made for.
func LocalAddr() (netip.Addr, Gateway, error) {
	gw, err := DefaultGateway()
	if err != nil {
		return netip.Addr{}, gw, err
	}
	ifc, err := net.InterfaceByName(gw.Interface)
	if err != nil {
		return netip.Addr{}, gw, fmt.Errorf("portmap: gateway interface: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, gw, fmt.Errorf("portmap: gateway interface: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), gw, nil
			}
		}
	}
	return netip.Addr{}, gw, fmt.Errorf("%w: no IPv4 address on %s", ErrNotOnGatewayLink, gw.Interface)
}

// Probe asks the gateway, through each enabled protocol at once, whether
// it speaks it, without making a mapping. local is this host's address on
// the gateway's link (see LocalAddr). It takes at most Config.Timeout.
func (c *Client) Probe(ctx context.Context, local netip.Addr) (ProbeResult, error) {
	gw, err := c.gateway(local)
	if err != nil {
		return ProbeResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	res := ProbeResult{Gateway: gw, Local: local, Errs: map[Protocol]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range c.cfg.Protocols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ext netip.Addr
			var err error
			switch p {
			case PCP:
				_, err = pcpAnnounce(ctx, gw, local)
			case NATPMP:
				ext, err = pmpExternal(ctx, gw, local)
			case UPnP:
				var dev *igd
				if dev, err = discoverIGD(ctx, gw, local); err == nil {
					var s string
					if s, err = dev.conn.GetExternalIPAddressCtx(ctx); err == nil {
						ext, err = netip.ParseAddr(s)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errs[p] = err
				return
			}
			switch p {
			case PCP:
				res.PCP = true
			case NATPMP:
				res.NATPMP = true
			case UPnP:
				res.UPnP = true
			}
			if ext.IsValid() && (!res.External.IsValid() || p == NATPMP) {
				res.External = ext.Unmap()
			}
		}()
	}
	wg.Wait()
	return res, nil
}
