package natbehavior

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/portmap"
	"github.com/icebreaker-net/icebreaker/stun"
)

// PortMapReport is what the router's port mapping can do for this host:
// which protocols the gateway speaks (package portmap), the external
// address it gives, and whether a mapping lets in traffic from a host this
// one never contacted.
type PortMapReport struct {
	Gateway netip.Addr `json:"gateway,omitzero"`
	PCP     bool       `json:"pcp"`
	NATPMP  bool       `json:"nat_pmp"`
	UPnP    bool       `json:"upnp"`
	// External is the router's external address; Mapped the test
	// mapping, made through Protocol.
	External netip.Addr     `json:"external_address,omitzero"`
	Mapped   netip.AddrPort `json:"mapped,omitzero"`
	Protocol string         `json:"protocol,omitempty"`
	// Reachable is Yes when the server's answer from its alternate
	// address came in through the mapping (RESPONSE-PORT with
	// CHANGE-REQUEST, RFC 5780, Sections 7.2 and 7.5).
	Reachable Tristate `json:"reachable"`
	// DoubleNAT is set when the router's external address is not the
	// public address the STUN server saw: the router is behind another
	// NAT, and its mappings do not help (icebreaker does not offer them).
	DoubleNAT bool   `json:"double_nat"`
	Verdict   string `json:"verdict"`
	Error     string `json:"error,omitempty"`
}

// ErrNoInbound is returned by CheckInbound when nothing came in.
var ErrNoInbound = errors.New("natbehavior: no answer came in through the port")

// CheckInbound tells whether port of this host's public address lets in a
// datagram from an address conn never sent to. It sends Binding requests
// from conn to server with CHANGE-REQUEST "change IP and port" (RFC 5780,
// Section 7.2) and RESPONSE-PORT port (Section 7.5): the server answers
// from its alternate address to the public IP it sees and that port. It
// returns where the answer came from, or ErrNoInbound when none arrived
// before ctx ended; requests go out every rto. No one else may read conn
// meanwhile.
func CheckInbound(ctx context.Context, conn *net.UDPConn, server netip.AddrPort, port uint16, rto time.Duration) (netip.AddrPort, error) {
	id := stun.NewTransactionID()
	req := buildRequest(id, changeIP|changePort, port)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	var m stun.Message
	for {
		if _, err := conn.WriteToUDPAddrPort(req, server); err != nil {
			return netip.AddrPort{}, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(rto))
		for {
			if ctx.Err() != nil {
				return netip.AddrPort{}, ErrNoInbound
			}
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if err != nil {
				return netip.AddrPort{}, err
			}
			if m.Parse(buf[:n]) != nil || m.TransactionID != id || m.Type != stun.BindingSuccess {
				continue
			}
			return netx.Unmap(from), nil
		}
	}
}

// CheckPortMap asks the gateway which port-mapping protocols it speaks
// (c.Probe), maps a new socket on this host's address on the gateway's
// link, and checks with CheckInbound against the RFC 5780 server of r
// that the mapping lets strangers in. r is the report of Discover against
// that server; its mapped address tells a double NAT. The answers go into
// r.PortMap, and its verdict is added to r.Verdict; failures are part of
// the report, not errors.
func CheckPortMap(ctx context.Context, c *portmap.Client, r *Report, rto, timeout time.Duration) {
	pr := &PortMapReport{Reachable: Unknown}
	r.PortMap = pr
	defer func() { r.Verdict += " " + pr.Verdict }()
	local, gw, err := portmap.LocalAddr()
	pr.Gateway = gw.Addr
	if err != nil {
		pr.Error = err.Error()
		pr.Verdict = "No port mapping: " + err.Error() + "."
		return
	}
	probe, err := c.Probe(ctx, local)
	if err != nil {
		pr.Error = err.Error()
		pr.Verdict = "No port mapping: " + err.Error() + "."
		return
	}
	pr.PCP, pr.NATPMP, pr.UPnP, pr.External = probe.PCP, probe.NATPMP, probe.UPnP, probe.External
	if !pr.PCP && !pr.NATPMP && !pr.UPnP {
		pr.Verdict = fmt.Sprintf("The gateway %v does not answer PCP, NAT-PMP or UPnP IGD: no port mapping.", gw.Addr)
		return
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		pr.Error = err.Error()
		pr.Verdict = "No port mapping: " + err.Error() + "."
		return
	}
	defer conn.Close()
	m, err := c.Map(ctx, conn.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		pr.Error = err.Error()
		pr.Verdict = "The gateway answers but made no mapping: " + err.Error() + "."
		return
	}
	defer m.Close()
	pr.Mapped, pr.Protocol, pr.External = m.External(), m.Protocol().String(), m.External().Addr()
	pub := r.MappedAddress.Addr().Unmap()
	if pub.IsValid() && pub != pr.External {
		pr.DoubleNAT = true
		pr.Verdict = fmt.Sprintf("The router's external address %v is not the public address %v the STUN server sees: "+
			"the router is itself behind another NAT (double NAT), so a port mapping on it does not let peers in, and icebreaker does not offer one.",
			pr.External, pub)
		return
	}
	if !r.OtherAddress.IsValid() {
		pr.Verdict = "The router maps ports (" + pr.Protocol + "); whether the mapping lets peers in could not be tested: the server does not support RFC 5780."
		return
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := CheckInbound(cctx, conn, r.Server, pr.Mapped.Port(), rto); err != nil {
		pr.Reachable = No
		pr.Verdict = "The router made a port mapping (" + pr.Protocol + "), but nothing from outside came in through it: a firewall beyond the router may filter it."
		return
	}
	pr.Reachable = Yes
	pr.Verdict = "With a port mapping that changes: the router maps ports (" + pr.Protocol + ") and lets anyone in through the mapping, so direct connections will work with any peer through a port mapping."
	return
}

// writeLines writes the port-mapping facts of Report.Text.
func (p *PortMapReport) writeLines(line func(k, v string)) {
	var speaks []string
	for _, s := range []struct {
		ok   bool
		name string
	}{{p.PCP, "PCP"}, {p.NATPMP, "NAT-PMP"}, {p.UPnP, "UPnP IGD"}} {
		if s.ok {
			speaks = append(speaks, s.name)
		}
	}
	gw := "none"
	if p.Gateway.IsValid() {
		gw = p.Gateway.String()
	}
	if len(speaks) == 0 {
		speaks = []string{"no answer"}
	}
	line("Port mapping", "gateway "+gw+": "+strings.Join(speaks, ", "))
	if p.External.IsValid() {
		line("Router's address", p.External.String())
	}
	if p.Mapped.IsValid() {
		reach := "reachable from outside: " + p.Reachable.String()
		if p.DoubleNAT {
			reach = "double NAT, not offered"
		}
		line("Mapped port", p.Mapped.String()+" via "+p.Protocol+", "+reach)
	}
}
