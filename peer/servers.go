package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/stun/stunuri"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// Resolver looks up a server's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// AddServers adds the ICE servers that a rendezvous handed out
// (wormhole.Wormhole.ICEServers, WebRTC's RTCIceServer shape) to gc: stun:
// URIs as STUN servers, turn: and turns: URIs as TURN servers with the
// entry's username and credential. Names are resolved with r (nil: IP
// literals only); an entry that cannot be used (a turn: URI without
// credentials, DTLS, an unresolvable name) is skipped and reported in the
// returned error, joined, while the usable ones are added.
func AddServers(ctx context.Context, gc *ice.GatherConfig, servers []wormhole.ICEServer, r Resolver) error {
	var errs []error
	for _, s := range servers {
		for _, raw := range s.URLs {
			if err := addServer(ctx, gc, raw, s.Username, s.Credential, r); err != nil {
				errs = append(errs, fmt.Errorf("ICE server %.100q: %w", raw, err))
			}
		}
	}
	return errors.Join(errs...)
}

func addServer(ctx context.Context, gc *ice.GatherConfig, raw, user, pass string, r Resolver) error {
	u, err := stunuri.Parse(raw)
	if err != nil {
		return err
	}
	addrs := []netip.Addr{u.Addr()}
	if !addrs[0].IsValid() {
		if r == nil {
			return errors.New("a name, and no resolver")
		}
		if addrs, err = r.LookupNetIP(ctx, "ip", u.Host); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), u.PortOrDefault())
		if !u.IsTURN() {
			if u.TransportOrDefault() == stunuri.UDP && !u.Secure() {
				gc.STUNServers = append(gc.STUNServers, ap)
			}
			continue
		}
		if user == "" || pass == "" {
			return errors.New("a TURN server without credentials")
		}
		ts := ice.TURNServer{Addr: ap, Username: user, Password: pass}
		switch {
		case u.Secure():
			ts.Transport, ts.TLSConfig = turnclient.TLS, &tls.Config{ServerName: u.Host}
		case u.TransportOrDefault() == stunuri.TCP:
			ts.Transport = turnclient.TCP
		}
		gc.TURNServers = append(gc.TURNServers, ts)
	}
	return nil
}
