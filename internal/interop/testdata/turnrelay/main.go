// Command turnrelay is the two ends of a TURN relay test in the NAT lab.
//
//	turnrelay client -server ADDR -user U -pass P -permit IP [-rounds N] [-timeout D]
//
// allocates on the TURN server at ADDR (UDP) with package turnclient and
// prints "relayed ADDR" and "mapped ADDR", asks for a permission for IP and
// prints "permitted" (or "forbidden" and exits 3 on a 403). It then waits
// for datagrams through the relay: the first "hello" from a peer tells it
// where the peer is; it sends "ping 1" to that peer, and "ping I+1" after
// each "pong I", resending a ping that got no pong every 200 ms, and prints
// "recv PAYLOAD from ADDR" for everything it receives. After N pongs
// (default 3) it prints "done" and the relay's counters and exits 0.
//
//	turnrelay peer -to ADDR [-timeout D]
//
// sends "hello" to ADDR (the relayed address) every 100 ms until a ping
// arrives, answers every "ping I" with "pong I", and prints "recv PAYLOAD
// from ADDR" for every datagram. It runs until -timeout or until killed.
//
// Both exit 1 with a message on any other error, and when -timeout
// (default 20 s) passes first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: turnrelay client|peer ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "client":
		err = client(os.Args[2:])
	case "peer":
		err = peer(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if errors.Is(err, turnclient.ErrForbidden) {
		fmt.Println("forbidden")
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "turnrelay:", err)
		os.Exit(1)
	}
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	server := fs.String("server", "", "TURN server IP:PORT")
	user := fs.String("user", "", "user name")
	pass := fs.String("pass", "", "password")
	permit := fs.String("permit", "", "peer IP to permit")
	rounds := fs.Int("rounds", 3, "ping/pong rounds")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*permit)
	if err != nil {
		return fmt.Errorf("-permit: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := turnclient.Allocate(ctx, turnclient.Config{
		Server: *server, Username: *user, Password: *pass,
		BindAfter: 1, // ChannelData from the second datagram on
	})
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	defer r.Close()
	fmt.Println("relayed", r.LocalAddr())
	fmt.Println("mapped", r.Mapped())
	if err := r.CreatePermission(ctx, ip); err != nil {
		return err
	}
	fmt.Println("permitted")

	deadline, _ := ctx.Deadline()
	var to net.Addr // the peer, once it said hello
	round := 1
	buf := make([]byte, 1500)
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %d of %d rounds (peer %v)", round-1, *rounds, to)
		}
		r.SetReadDeadline(earlier(deadline, time.Now().Add(200*time.Millisecond)))
		n, from, err := r.ReadFrom(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err == nil {
			msg := string(buf[:n])
			fmt.Printf("recv %s from %v\n", msg, from)
			switch {
			case to == nil && msg == "hello":
				to = from
			case msg == fmt.Sprintf("pong %d", round):
				if round == *rounds {
					fmt.Printf("done %+v\n", r.Stats())
					return nil
				}
				round++
			default:
				continue // a duplicate hello or a late pong: no new ping
			}
		}
		if to != nil {
			if _, err := r.WriteTo(fmt.Appendf(nil, "ping %d", round), to); err != nil {
				return err
			}
		}
	}
}

func peer(args []string) error {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	toFlag := fs.String("to", "", "relayed address IP:PORT")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	to, err := netip.ParseAddrPort(*toFlag)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(*timeout)
	pinged := false
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if !pinged {
			if _, err := c.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
				return err
			}
		}
		c.SetReadDeadline(earlier(deadline, time.Now().Add(100*time.Millisecond)))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
		msg := string(buf[:n])
		fmt.Printf("recv %s from %v\n", msg, from)
		if i, ok := strings.CutPrefix(msg, "ping "); ok {
			pinged = true
			if _, err := c.WriteToUDPAddrPort([]byte("pong "+i), from); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("timed out (pinged: %v)", pinged)
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
