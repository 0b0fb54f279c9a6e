package turnserver

import (
	"context"
	"log/slog"
	"time"
)

// The usage records: one Info record when an allocation is created and
// one when it ends, with what it relayed, so that an operator can meter
// and bill relayed traffic per user from the logs (coturn logs the like at
// the end of a session). Nothing is logged per packet, and nothing is
// formatted when Info is off.

// transportName names the client transport of a 5-tuple.
func transportName(t uint8) string {
	switch t {
	case transportTCP:
		return "tcp"
	case transportTLS:
		return "tls"
	}
	return "udp"
}

// relayAddrs returns the advertised relayed addresses of a: one, two for
// a dual allocation, or the listener of a TCP allocation.
func (a *allocation) relayAddrs() []string {
	var out []string
	for i := range a.relays {
		if r := a.relays[i].Load(); r != nil {
			out = append(out, r.public.String())
		}
	}
	if a.tcp != nil {
		out = append(out, "tcp "+a.tcp.public.String())
	}
	return out
}

// logCreated records a new allocation.
func (s *Server) logCreated(a *allocation, lifetime time.Duration) {
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	s.log.Info("turn allocation created", "user", a.user.name, "client", a.key.client.String(),
		"transport", transportName(a.key.transport), "relay", a.relayAddrs(), "lifetime", lifetime)
}

// logEnded records what an allocation relayed in its life; relays are
// its addresses, taken before its sockets closed.
func (s *Server) logEnded(a *allocation, why string, relays []string) {
	p, c := a.toPeer.snapshot(), a.toClient.snapshot()
	s.log.Info("turn allocation ended", "user", a.user.name, "client", a.key.client.String(),
		"transport", transportName(a.key.transport), "relay", relays, "reason", why,
		"duration", time.Duration(s.mono()-a.created).Round(time.Millisecond),
		"to_peer_packets", p[0], "to_peer_bytes", p[1],
		"to_client_packets", c[0], "to_client_bytes", c[1],
		"dropped_quota", p[2]+c[2], "dropped_policy", p[3]+c[3], "dropped_no_permission", p[4]+c[4],
		"send_errors", p[5], "client_send_errors", c[5])
}
