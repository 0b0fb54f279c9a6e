// Command pmclient is the natlab tests' port-mapping client: run inside a
// lab namespace, it maps one UDP socket through package portmap and
// reports on standard output what happens.
//
//	pmclient -local IP:PORT [-proto pcp|nat-pmp|upnp] [-lifetime D] [-timeout D]
//
// prints "mapped PROTO EXTERNAL" (or "nomap ERROR" and exits), then
// "recv FROM PAYLOAD" for every datagram the socket receives and
// "renewed N" after each renewal, until its standard input closes; then
// it closes the mapping, prints "closed ERROR" ("closed <nil>" when the
// deletion succeeded) and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/portmap"
)

func main() {
	local := flag.String("local", "", "local IP:PORT to bind and map")
	proto := flag.String("proto", "", "force one protocol: pcp, nat-pmp or upnp")
	lifetime := flag.Duration("lifetime", 0, "mapping lifetime to ask for")
	timeout := flag.Duration("timeout", 0, "portmap.Config.Timeout")
	flag.Parse()
	if err := run(*local, *proto, *lifetime, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "pmclient:", err)
		os.Exit(1)
	}
}

func run(local, proto string, lifetime, timeout time.Duration) error {
	ap, err := netip.ParseAddrPort(local)
	if err != nil {
		return err
	}
	cfg := portmap.Config{Lifetime: lifetime, Timeout: timeout,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if proto != "" {
		p, err := portmap.ParseProtocol(proto)
		if err != nil {
			return err
		}
		cfg.Protocols = []portmap.Protocol{p}
	}
	c, err := portmap.New(cfg)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	m, err := c.Map(context.Background(), ap)
	if err != nil {
		fmt.Printf("nomap after %v: %v\n", time.Since(start).Round(time.Millisecond), err)
		return nil
	}
	fmt.Printf("mapped %s %s\n", m.Protocol(), m.External())
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			fmt.Printf("recv %s %s\n", from, b[:n])
		}
	}()
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	seen := 0
	for {
		select {
		case <-eof:
			fmt.Printf("closed %v\n", m.Close())
			return nil
		case <-tick.C:
			if n, _ := m.Renewals(); n != seen {
				seen = n
				fmt.Printf("renewed %d %s\n", n, m.External())
			}
		}
	}
}
