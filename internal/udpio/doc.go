// Package udpio is icebreaker's UDP socket plumbing: groups of sockets that
// share one address with SO_REUSEPORT (so the kernel spreads flows across
// one reader per core), and batched datagram I/O with recvmmsg(2) and
// sendmmsg(2) on Linux, with a portable one-datagram-per-call fallback. A
// Sender sends runs of equal-size datagrams to one address with UDP GSO
// (UDP_SEGMENT, Linux 4.18 and later) and falls back to sendmmsg for a
// socket where the kernel refuses it. A Poller reads many sockets (one per
// TURN allocation) with one goroutine: an epoll instance on Go's netpoller
// and recvfrom into an arena with room around each datagram (poll.go).
// Where many sockets carry a datagram or two each (a TURN server's relays
// at modest rates), io_uring moves the datagrams of up to 64 sockets per
// system call: Sender.SendSpread sends them, and a Poller with many
// sockets ready reads one from each (uring_linux.go, Linux 5.4 and later,
// with one system call per socket where io_uring is missing or
// forbidden).
// The socket options servers need live here too: SO_REUSEPORT for
// listeners and dialers (ControlReusePort) and the don't-fragment bit
// (SetDontFragment). This is the one package that speaks to sockets below
// the protocols, and it has one decoder of source addresses.
//
// Addresses are netip.AddrPort throughout. Source addresses are unmapped:
// a datagram from 192.0.2.1 on a dual-stack IPv6 socket reports 192.0.2.1,
// not ::ffff:192.0.2.1, and sending to an IPv4 address through such a
// socket maps it back.
//
// Neither path allocates per datagram once a Conn is built.
//
// The package is internal: its API serves icebreaker's servers and may
// change with them.
package udpio
