// Command udpecho is a UDP helper for the natlab tests.
//
//	udpecho serve -listen ADDR [-listen ADDR...] [-alt ADDR...]
//
// listens on every -listen address and prints "listening" once all sockets are
// bound. Every datagram received from S on a listen socket is answered from
// that socket with "mapped=S", and each -alt socket sends "probe" to S (so a
// test can see which unsolicited senders a NAT lets through).
//
//	udpecho send -bind ADDR -to ADDR [-to ADDR...] [-wait DURATION]
//
// sends "hello" from one socket bound to -bind to every -to address (twice,
// 100ms apart), then prints "recv FROM PAYLOAD" for every datagram received
// until -wait has passed since the first send.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

type addrList []string

func (a *addrList) String() string     { return strings.Join(*a, ",") }
func (a *addrList) Set(s string) error { *a = append(*a, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: udpecho serve|send ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var listen, alt addrList
	fs.Var(&listen, "listen", "address to answer on (repeatable)")
	fs.Var(&alt, "alt", "address to send probes from (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(listen) == 0 {
		return fmt.Errorf("serve: no -listen address")
	}
	bind := func(a string) (*net.UDPConn, error) {
		ua, err := net.ResolveUDPAddr("udp4", a)
		if err != nil {
			return nil, err
		}
		return net.ListenUDP("udp4", ua)
	}
	var alts []*net.UDPConn
	for _, a := range alt {
		c, err := bind(a)
		if err != nil {
			return err
		}
		alts = append(alts, c)
	}
	var conns []*net.UDPConn
	for _, a := range listen {
		c, err := bind(a)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	var mu sync.Mutex // keeps output lines whole
	fmt.Println("listening")
	errc := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				fmt.Printf("got %s->%s %s\n", from, c.LocalAddr(), buf[:n])
				mu.Unlock()
				if _, err := c.WriteToUDP([]byte("mapped="+from.String()), from); err != nil {
					fmt.Fprintln(os.Stderr, "reply:", err)
				}
				for _, a := range alts {
					if _, err := a.WriteToUDP([]byte("probe"), from); err != nil {
						fmt.Fprintln(os.Stderr, "probe:", err)
					}
				}
			}
		}()
	}
	return <-errc
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var to addrList
	bind := fs.String("bind", "0.0.0.0:0", "local address")
	wait := fs.Duration("wait", 1500*time.Millisecond, "how long to collect replies")
	fs.Var(&to, "to", "destination (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	la, err := net.ResolveUDPAddr("udp4", *bind)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", la)
	if err != nil {
		return err
	}
	defer c.Close()
	var dsts []*net.UDPAddr
	for _, a := range to {
		ua, err := net.ResolveUDPAddr("udp4", a)
		if err != nil {
			return err
		}
		dsts = append(dsts, ua)
	}
	deadline := time.Now().Add(*wait)
	go func() {
		for i := 0; i < 2; i++ {
			for _, d := range dsts {
				if _, err := c.WriteToUDP([]byte("hello"), d); err != nil {
					fmt.Fprintln(os.Stderr, "send:", err)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return nil
			}
			return err
		}
		fmt.Printf("recv %s %s\n", from, buf[:n])
	}
}
