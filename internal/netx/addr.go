package netx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Unmap returns ap with an IPv4-mapped IPv6 address turned into the IPv4
// address; any other address, and the port, are kept.
func Unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().Is4In6() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// AddrPort returns the unmapped address and port of a, a *net.UDPAddr or
// *net.TCPAddr, or any net.Addr whose String is IP:port. It returns the
// zero AddrPort for nil or an address it cannot read.
func AddrPort(a net.Addr) netip.AddrPort {
	ap, _ := ParseAddr(a)
	return ap
}

// ParseAddr is AddrPort with an error for nil and for an address that is
// not IP:port.
func ParseAddr(a net.Addr) (netip.AddrPort, error) {
	switch a := a.(type) {
	case *net.UDPAddr:
		if a == nil {
			return netip.AddrPort{}, errors.New("nil address")
		}
		return Unmap(a.AddrPort()), nil
	case *net.TCPAddr:
		if a == nil {
			return netip.AddrPort{}, errors.New("nil address")
		}
		return Unmap(a.AddrPort()), nil
	case nil:
		return netip.AddrPort{}, errors.New("no address")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", a.String(), err)
	}
	return Unmap(ap), nil
}

// UDPAddr returns ap as a *net.UDPAddr, or a nil net.Addr when ap is the
// zero value (so that a missing address is nil, as in a *net.OpError of
// the standard library, not a *net.UDPAddr of zeros).
func UDPAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// TCPAddr is UDPAddr for a *net.TCPAddr.
func TCPAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// OpError wraps err as the standard library's sockets do: op is "read",
// "write", "dial" and so on, network "udp" or "tcp" (or a protocol name),
// source and addr the local and remote addresses, either nil.
func OpError(op, network string, source, addr net.Addr, err error) *net.OpError {
	return &net.OpError{Op: op, Net: network, Source: source, Addr: addr, Err: err}
}
