package ice

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
)

// PortRange confines the ports of host candidates (as pion's
// SetEphemeralUDPPortRange does), for a firewall that opens only a range.
// The zero value means any port the system picks.
type PortRange struct {
	Min, Max uint16 // inclusive
}

// validate checks a non-zero range.
func (r PortRange) validate() error {
	if r != (PortRange{}) && (r.Min == 0 || r.Min > r.Max) {
		return fmt.Errorf("ice: GatherConfig.PortRange %d-%d is not a range of non-zero ports", r.Min, r.Max)
	}
	return nil
}

// listenHost binds a UDP socket to ip: on any port for the zero range,
// else on a free port of r, trying each once from a random start.
func listenHost(network string, ip netip.Addr, r PortRange) (*net.UDPConn, error) {
	if r == (PortRange{}) {
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	n := int(r.Max) - int(r.Min) + 1
	start := rand.IntN(n)
	for i := range n {
		port := uint16(int(r.Min) + (start+i)%n)
		conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("ice: no free UDP port on %v in %d-%d", ip, r.Min, r.Max)
}
