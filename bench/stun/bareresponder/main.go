// Command bareresponder is the ceiling reference of the STUN benchmark: the
// least a Go program can do to answer STUN Binding requests (RFC 8489,
// Section 3, https://www.rfc-editor.org/rfc/rfc8489) on UDP.
//
// One socket, one goroutine, one ReadFromUDPAddrPort and one
// WriteToUDPAddrPort per packet, no allocation: it parses with
// stun.Message.Parse and answers with XOR-MAPPED-ADDRESS (RFC 8489,
// Section 14.2) and FINGERPRINT (Section 14.7). Pinned to one core it shows
// what one core can do with one system call per datagram each way; a
// server slower than it spends time on something other than the socket.
//
// It only listens on loopback. It prints "listening udp ADDR" on stdout
// and, when it stops (SIGINT or SIGTERM), its counters on stderr.
//
// Usage:
//
//	bareresponder [-listen 127.0.0.1] [-port 0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bareresponder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1", "loopback `IP` to listen on")
	port := fs.Int("port", 0, "UDP port (0: any free port)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ip, err := loopback.IP(*listen)
	if err != nil {
		fmt.Fprintf(stderr, "bareresponder: -listen: %v\n", err)
		return 2
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(stderr, "bareresponder: -port %d: want 0 to 65535\n", *port)
		return 2
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(*port))))
	if err != nil {
		fmt.Fprintf(stderr, "bareresponder: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "listening udp %s\n", conn.LocalAddr())

	// The serving loop ends when the socket is closed.
	go func() {
		<-ctx.Done()
		_ = conn.Close()
	}()
	var st stats
	err = serve(conn, &st)
	_ = conn.Close()
	fmt.Fprintf(stderr, "bareresponder: answered=%d dropped=%d errors=%d\n", st.answered, st.dropped, st.errors)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(stderr, "bareresponder: %v\n", err)
		return 1
	}
	return 0
}

// stats counts what serve did. Only the serving goroutine writes it.
type stats struct {
	answered, dropped, errors uint64
}

// serve answers Binding requests on conn until it is closed, and returns
// the error that ended it.
func serve(conn *net.UDPConn, st *stats) error {
	var (
		msg stun.Message
		in  = make([]byte, 1500)
		out = make([]byte, 0, 64)
	)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			st.errors++ // e.g. ECONNREFUSED left by an earlier send
			continue
		}
		var ok bool
		out, ok = respond(out[:0], &msg, in[:n], from)
		if !ok {
			st.dropped++
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(out, from); err != nil {
			st.errors++
			continue
		}
		st.answered++
	}
}

// respond appends to b the answer to the Binding request in pkt from the
// client at from, reusing msg for parsing. It reports false, with b
// unchanged, for anything but a Binding request with the magic cookie.
func respond(b []byte, msg *stun.Message, pkt []byte, from netip.AddrPort) ([]byte, bool) {
	if err := msg.Parse(pkt); err != nil || msg.Classic || msg.Type != stun.BindingRequest {
		return b, false
	}
	from = netx.Unmap(from)
	b = stun.AppendHeader(b, stun.BindingSuccess, msg.TransactionID)
	b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, msg.TransactionID)
	return stun.AppendFingerprint(b), true
}
