// Package loopback is the network-hygiene guard of the benchmark tools:
// they are benchmarks, not flooders, and send only to this host. Every
// address a tool takes from its command line or learns from a server
// goes through it.
package loopback

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// ErrNotLoopback reports an address outside 127.0.0.0/8 and ::1. The tools
// are benchmarks, not flooders: they send only to this host.
var ErrNotLoopback = errors.New("not a loopback address")

// Target parses s as an IP literal and port that must be a loopback address
// with a non-zero port. Host names are refused so that no resolver can turn
// the target into something else. An IPv4-mapped address is unmapped.
func Target(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("no address given (want IP:PORT on loopback, for example 127.0.0.1:3478)")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want IP:PORT: %w", s, err)
	}
	ap = netx.Unmap(ap)
	if !ap.Addr().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("%s: %w", ap, ErrNotLoopback)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s: port 0", ap)
	}
	return ap, nil
}

// IP parses s as a loopback IP literal (a local address to bind).
func IP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q: want an IP address: %w", s, err)
	}
	a = a.Unmap()
	if !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("%s: %w", a, ErrNotLoopback)
	}
	return a, nil
}

// Check returns an error wrapping ErrNotLoopback unless a is a
// loopback address: the guard for addresses learned from a server (relayed
// addresses) before anything is sent to them.
func Check(a netip.AddrPort) error {
	if !a.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("%s: %w", a, ErrNotLoopback)
	}
	return nil
}
