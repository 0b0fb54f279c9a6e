// Command inproc runs icebreaker's STUN and TURN server (UDP only) in a
// process that can profile itself, for the TURN benchmark: the server is
// wired as `icebreaker serve --user ... --allow-peer ... --udp-sockets N`
// wires it, without the configuration layer. It writes a CPU profile of its
// whole run and a heap profile at exit, and prints the TURN counters.
//
// With -rcvbuf it enlarges the receive buffer of the listener sockets from
// outside the server's code: an experiment to measure what the buffer size
// does to loss, before anyone changes the server.
//
// It listens on loopback only and exits on SIGINT or SIGTERM, or after -max.
//
// Usage:
//
//	inproc -listen 127.0.0.1:3478 -user u:p -allow-peer 127.0.0.0/8 -udp-sockets 1 -cpuprofile cpu.prof -memprofile heap.prof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/ibserver"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// prefixes is a repeatable CIDR flag.
type prefixes []netip.Prefix

func (p *prefixes) String() string { return fmt.Sprint(*p) }
func (p *prefixes) Set(s string) error {
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return err
	}
	*p = append(*p, pf)
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inproc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "UDP `address` to serve on, a loopback IP and port (port 0 picks one)")
	user := fs.String("user", "", "TURN user `NAME:PASSWORD`")
	realm := fs.String("realm", "bench", "TURN realm")
	sockets := fs.Int("udp-sockets", 1, "UDP sockets (0: one per CPU)")
	cpuProf := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	memProf := fs.String("memprofile", "", "write a heap profile at exit to `FILE`")
	rcvbuf := fs.Int("rcvbuf", 0, "experiment: set SO_RCVBUF of the UDP listener sockets to this many `bytes` after they open (0: leave the server's choice)")
	maxRun := fs.Duration("max", 5*time.Minute, "exit after this long at the latest")
	var allow prefixes
	fs.Var(&allow, "allow-peer", "peer `CIDR` to allow despite the built-in denials; repeatable")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "inproc: %v\n", err)
		return 1
	}
	// Not loopback.Target, which refuses port 0: here it picks a port.
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fail(fmt.Errorf("-listen: %w", err))
	}
	if err := loopback.Check(ap); err != nil {
		return fail(fmt.Errorf("-listen: %w", err))
	}
	creds, err := turnload.ParseCreds(*user)
	if err != nil {
		return fail(err)
	}
	if *maxRun <= 0 || *maxRun > time.Hour {
		return fail(fmt.Errorf("-max %v: want up to 1h", *maxRun))
	}
	stopProfile, err := turnload.StartCPUProfile(*cpuProf)
	if err != nil {
		return fail(err)
	}
	defer stopProfile()
	srv, err := ibserver.Start(ibserver.Config{
		Listen: ap, Realm: *realm, Users: map[string]string{creds.Username: creds.Password},
		AllowPeers: allow, UDPSockets: *sockets,
	})
	if err != nil {
		return fail(err)
	}
	if *rcvbuf > 0 {
		n, err := setListenerRcvbuf(int(srv.Addr().Port()), *rcvbuf)
		if err != nil {
			_ = srv.Close()
			return fail(err)
		}
		fmt.Fprintf(stdout, "inproc: SO_RCVBUF %d on %d listener sockets\n", *rcvbuf, n)
	}
	fmt.Fprintf(stdout, "inproc: listening on udp %v\n", srv.Addr())
	select {
	case <-ctx.Done():
	case <-time.After(*maxRun):
	}
	st := srv.Stats()
	if err := srv.Close(); err != nil {
		fmt.Fprintf(stderr, "inproc: close: %v\n", err)
	}
	fmt.Fprintf(stdout, "inproc: stats %+v\n", st)
	if *memProf != "" {
		f, err := os.Create(*memProf)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return fail(err)
		}
	}
	return 0
}
