package portmap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

const (
	ssdpPort = 1900
	// ssdpTarget is the search target: IGD v1, which v2 devices also
	// answer (UPnP Device Architecture 1.1, Section 1.3.2).
	ssdpTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	// upnpDescription names our mappings on the router.
	upnpDescription = "icebreaker"
	// upnpOnlyPermanentLeases is UPnP error 725: the router takes lease
	// duration 0 (no expiry) only (WANIPConnection v1, Section 2.4.16).
	upnpOnlyPermanentLeases = 725
)

// soapTransport carries the SOAP requests to routers, without keep-alive.
var soapTransport = &http.Transport{DisableKeepAlives: true}

// igdConn is what WANIPConnection v1 and v2 share in goupnp.
type igdConn interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string, intPort uint16, intClient string, enabled bool, desc string, lease uint32) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	DeletePortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) error
}

// igd is a discovered Internet Gateway Device's WANIPConnection service.
type igd struct {
	conn    igdConn
	version int // 1 or 2
	loc     *url.URL
}

// ssdpRequest is an SSDP M-SEARCH sent to the gateway alone (unicast, so
// no MAN-reply delay and no multicast beyond it).
func ssdpRequest(gw netip.Addr) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: " + netip.AddrPortFrom(gw, ssdpPort).String() + "\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"ST: " + ssdpTarget + "\r\n" +
		"USER-AGENT: Linux/1 UPnP/1.1 icebreaker/1\r\n\r\n")
}

// parseSSDPResponse parses an SSDP search response and returns its
// LOCATION, which must be an http URL on gw itself (a device that points
// elsewhere is not our gateway, and we fetch nothing from other hosts).
func parseSSDPResponse(b []byte, gw netip.Addr) (*url.URL, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("portmap: SSDP response: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("portmap: SSDP response status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("portmap: SSDP LOCATION: %w", err)
	}
	host, err := netip.ParseAddr(loc.Hostname())
	if loc.Scheme != "http" || err != nil || host.Unmap() != gw {
		return nil, fmt.Errorf("portmap: SSDP LOCATION %q is not on the gateway %v", loc, gw)
	}
	return loc, nil
}

// discoverIGD finds the gateway's WANIPConnection service: an SSDP
// M-SEARCH to gw (retransmitted while ctx lasts), then the device
// description from the answer's LOCATION.
func discoverIGD(ctx context.Context, gw, local netip.Addr) (*igd, error) {
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, ssdpPort)))
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	req := ssdpRequest(gw)
	buf := make([]byte, 2048)
	rto := pcpRetransmit
	var loc *url.URL
	for loc == nil {
		if _, err = conn.Write(req); err != nil {
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(rto))
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		var n int
		n, err = conn.Read(buf)
		var ne net.Error
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		if errors.As(err, &ne) && ne.Timeout() {
			rto *= 2
			continue
		}
		if err != nil {
			break
		}
		loc, err = parseSSDPResponse(buf[:n], gw)
	}
	stop()
	conn.Close()
	if loc == nil {
		return nil, fmt.Errorf("portmap: SSDP: %w", err)
	}
	root, err := goupnp.DeviceByURLCtx(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("portmap: UPnP description: %w", err)
	}
	// SOAP calls are rare (a mapping, its renewals, its deletion): no
	// connection is kept open to the router between them.
	soapClient := http.Client{Transport: soapTransport}
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		cs[0].SOAPClient.HTTPClient = soapClient
		return &igd{conn: cs[0], version: 2, loc: loc}, nil
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		cs[0].SOAPClient.HTTPClient = soapClient
		return &igd{conn: cs[0], version: 1, loc: loc}, nil
	}
	return nil, fmt.Errorf("portmap: UPnP device at %v has no WANIPConnection service", loc)
}

// upnpMapper holds one UPnP IGD port mapping.
type upnpMapper struct {
	dev   *igd
	local netip.AddrPort
	ext   netip.AddrPort
	asked uint16 // the external port last asked for
	lease uint32 // 0 after the router said it only takes permanent leases
}

func (u *upnpMapper) add(ctx context.Context, lifetime time.Duration) (netip.AddrPort, time.Duration, error) {
	port := u.local.Port()
	if u.ext.IsValid() {
		port = u.ext.Port()
	} else {
		u.lease = uint32(lifetime / time.Second)
	}
	u.asked = port
	err := u.dev.conn.AddPortMappingCtx(ctx, "", port, "UDP", u.local.Port(), u.local.Addr().String(), true, upnpDescription, u.lease)
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) && fault.Detail.UPnPError.Errorcode == upnpOnlyPermanentLeases && u.lease != 0 {
		u.lease = 0
		err = u.dev.conn.AddPortMappingCtx(ctx, "", port, "UDP", u.local.Port(), u.local.Addr().String(), true, upnpDescription, 0)
	}
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("portmap: UPnP AddPortMapping: %w", err)
	}
	addr := u.ext.Addr()
	if !addr.IsValid() {
		s, err := u.dev.conn.GetExternalIPAddressCtx(ctx)
		if err != nil {
			_ = u.dev.conn.DeletePortMappingCtx(ctx, "", port, "UDP")
			return netip.AddrPort{}, 0, fmt.Errorf("portmap: UPnP GetExternalIPAddress: %w", err)
		}
		if addr, err = netip.ParseAddr(s); err != nil || !addr.Is4() {
			_ = u.dev.conn.DeletePortMappingCtx(ctx, "", port, "UDP")
			return netip.AddrPort{}, 0, fmt.Errorf("portmap: UPnP external address %q", s)
		}
	}
	u.ext = netip.AddrPortFrom(addr, port)
	granted := time.Duration(u.lease) * time.Second
	if u.lease == 0 {
		// A permanent lease: renew it anyway, at the asked-for pace, so
		// that a router that rebooted gets it back.
		granted = lifetime
	}
	return u.ext, granted, nil
}

func (u *upnpMapper) del(ctx context.Context) error {
	port := u.ext.Port()
	if port == 0 {
		port = u.asked // an AddPortMapping whose answer never came
	}
	if port == 0 {
		return errors.New("portmap: UPnP: nothing to delete")
	}
	if err := u.dev.conn.DeletePortMappingCtx(ctx, "", port, "UDP"); err != nil {
		return fmt.Errorf("portmap: UPnP DeletePortMapping: %w", err)
	}
	return nil
}
