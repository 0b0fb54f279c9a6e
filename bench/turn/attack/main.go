// Command attack runs the attacks of project issue 13 against a TURN
// server on loopback and reports what each got, and, given the server's
// PID, what it cost the server (CPU, RSS, descriptors) and another
// client (relay round trip) before and during. bench/attack.sh runs it at
// full size against `icebreaker serve`; its tests run it small against an
// in-process server.
//
// Every address it sends to is on loopback: the server, the relayed
// addresses, and the peers it names (127.2.0.0/16 for permissions, which
// send nothing).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/ibserver"
	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
}

type options struct {
	server, tcpServer string
	user, victim      string
	attacks           string
	pid               int
	permRequests, per int
	junkRate          int
	junkFor           time.Duration
	pings             int
	reserveLoops      int
	reflectN          int
	churnClients      int
	churnFor          time.Duration
	reflectPause      time.Duration
	connectAllocs     int
	connectPeers      int
	restSecret        string
	restLife          time.Duration
	external, metrics string
	inproc            bool
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "127.0.0.1:3478", "server `IP:PORT` (loopback only)")
	fs.StringVar(&o.tcpServer, "tcp-server", "", "server TCP `IP:PORT`; default: -server")
	fs.StringVar(&o.user, "user", "", "attacker credentials `NAME:PASSWORD`")
	fs.StringVar(&o.victim, "victim", "", "another user's credentials `NAME:PASSWORD`, for the latency and the bystander")
	fs.StringVar(&o.attacks, "attacks", "permissions,replay,reservations,reflect", "comma-separated attacks to run")
	fs.IntVar(&o.pid, "pid", 0, "server `PID`, to report its CPU, RSS and descriptors")
	fs.IntVar(&o.permRequests, "perm-requests", 334, "CreatePermission requests")
	fs.IntVar(&o.per, "perm-peers", 300, "peers per CreatePermission")
	fs.IntVar(&o.junkRate, "junk-rate", 10000, "junk datagrams per second to the relay")
	fs.DurationVar(&o.junkFor, "junk-for", 5*time.Second, "how long the junk flood lasts")
	fs.IntVar(&o.pings, "pings", 500, "victim round trips per measurement")
	fs.IntVar(&o.reserveLoops, "reserve-loops", 300, "Allocate EVEN-PORT R=1 + Refresh 0 loops")
	fs.IntVar(&o.reflectN, "reflect-flood", 1000, "bare requests in the reflection flood")
	fs.DurationVar(&o.reflectPause, "reflect-pause", 3*time.Second, "quiet time before the reflection, for the error-answer limit of the source address to refill")
	fs.IntVar(&o.connectAllocs, "connect-allocations", 20, "TCP allocations of the Connect flood")
	fs.IntVar(&o.connectPeers, "connect-peers", 50, "Connects per allocation, to peers that never answer")
	fs.StringVar(&o.restSecret, "rest-secret", "", "the server's REST `SECRET` (attack \"rest\")")
	fs.DurationVar(&o.restLife, "rest-life", 3*time.Second, "life of the REST credential that a call outlives")
	fs.StringVar(&o.external, "external-ip", "", "the server's advertised public `IP` (attack \"own\"; permissions send nothing)")
	fs.StringVar(&o.metrics, "metrics", "", "the server's metrics `IP:PORT` (attack \"own\")")
	fs.BoolVar(&o.inproc, "inproc", false, "attack a server started in this process (the -user's only, no quota per user) instead of -server, and report its goroutines")
	fs.IntVar(&o.churnClients, "churn-clients", 10000, "allocations of the churn soak (attack \"churn\")")
	fs.DurationVar(&o.churnFor, "churn-for", time.Minute, "how long the churn soak lasts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	creds, err := turnload.ParseCreds(o.user)
	if err != nil {
		return err
	}
	if o.inproc {
		srv, err := ibserver.Start(ibserver.Config{
			Listen: netip.MustParseAddrPort("127.0.0.1:0"), Users: map[string]string{creds.Username: creds.Password},
			AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		o.server, o.pid = srv.Addr().String(), os.Getpid()
		// One allocation first starts what the server keeps for good
		// (relay pollers, janitor): the baseline is after it.
		warm := target{server: srv.Addr(), tcpServer: srv.Addr(), creds: creds}
		if err := warmUp(warm); err != nil {
			return err
		}
		goroutines := runtime.NumGoroutine()
		defer func() {
			time.Sleep(2 * time.Second) // the janitor's sweep, sockets closing
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(out, "inproc: goroutines %d before, %d after; Go heap in use %d KB; server stats %+v\n",
				goroutines, runtime.NumGoroutine(), ms.HeapInuse>>10, srv.Stats())
		}()
	}
	server, err := netip.ParseAddrPort(o.server)
	if err != nil || !server.Addr().IsLoopback() {
		return fmt.Errorf("-server %q: a loopback IP:PORT is required", o.server)
	}
	tcpServer := server
	if o.tcpServer != "" {
		if tcpServer, err = netip.ParseAddrPort(o.tcpServer); err != nil || !tcpServer.Addr().IsLoopback() {
			return fmt.Errorf("-tcp-server %q: a loopback IP:PORT is required", o.tcpServer)
		}
	}
	t := target{server: server, tcpServer: tcpServer, creds: creds}
	var vt *target
	if o.victim != "" {
		vc, err := turnload.ParseCreds(o.victim)
		if err != nil {
			return fmt.Errorf("-victim: %w", err)
		}
		vt = &target{server: server, tcpServer: tcpServer, creds: vc}
	}
	for _, a := range strings.Split(o.attacks, ",") {
		var err error
		switch a {
		case "":
		case "permissions":
			err = runPermissions(out, t, vt, o)
		case "replay":
			err = runReplay(out, t)
		case "reservations":
			err = runReservations(out, t, vt, o)
		case "reflect":
			err = runReflect(out, t, o)
		case "churn":
			err = runChurn(out, t, o)
		case "connect":
			err = runConnect(out, t, o)
		case "rest":
			err = runREST(out, t, o)
		case "own":
			err = runOwn(out, t, o)
		default:
			err = fmt.Errorf("unknown attack %q", a)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
	}
	return nil
}

func runPermissions(out io.Writer, t target, vt *target, o options) error {
	var v *victim
	if vt != nil {
		var err error
		if v, err = newVictim(*vt); err != nil {
			return err
		}
		defer v.close()
	}
	start := time.Now()
	got, c, relayed, err := permissionFlood(t, o.permRequests, o.per)
	if err != nil {
		return err
	}
	defer c.close()
	fmt.Fprintf(out, "permissions: %d CreatePermission x %d peers, then 16 at a time until refused, in %v:%v; server %s\n",
		o.permRequests, o.per, time.Since(start).Round(time.Millisecond), got, sample(o.pid))
	before := sample(o.pid)
	if v != nil {
		p50, p99, lost := v.measure(o.pings, 0)
		fmt.Fprintf(out, "permissions: victim before: p50 %v p99 %v lost %d\n", p50, p99, lost)
	}
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() { n, _ := junk(relayed, o.junkRate, o.junkRate*int(o.junkFor/time.Second+1), stop); done <- n }()
	if v != nil {
		p50, p99, lost := v.measure(o.pings, o.junkFor)
		fmt.Fprintf(out, "permissions: victim during %d junk/s: p50 %v p99 %v lost %d\n", o.junkRate, p50, p99, lost)
	} else {
		time.Sleep(o.junkFor)
	}
	close(stop)
	sent := <-done
	after := sample(o.pid)
	fmt.Fprintf(out, "permissions: junk sent %d; server %s\n", sent, after.delta(before))
	return nil
}

func runReplay(out io.Writer, t target) error {
	cross, zero, survived, err := replay(t)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "replay: Allocate from another port: %s; Refresh 0 after re-Allocate: %s, allocation survived: %v\n",
		codeName(cross), codeName(zero), survived)
	return nil
}

func runReservations(out io.Writer, t target, vt *target, o options) error {
	got, err := reservationLoop(t, o.reserveLoops)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "reservations: %d x (Allocate EVEN-PORT R=1, Refresh 0):%v; server %s\n", o.reserveLoops, got, sample(o.pid))
	if vt != nil {
		c, err := vt.dial()
		if err != nil {
			return err
		}
		defer c.close()
		_, code, err := c.do(stun.MethodAllocate, turnload.AppendAllocate)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "reservations: another user's Allocate: %s\n", codeName(code))
	}
	return nil
}

func runReflect(out io.Writer, t target, o options) error {
	time.Sleep(o.reflectPause)
	rs, err := reflect(t)
	if err != nil {
		return err
	}
	for _, r := range rs {
		fmt.Fprintf(out, "reflect: %-16v %d-byte request, %3d-byte answer: %.1fx\n", r.method, r.req, r.out, float64(r.out)/float64(r.req))
	}
	n, bytes, err := reflectFlood(t, o.reflectN)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "reflect: flood of %d bare Allocates from one address: %d answered, %d bytes back for %d sent (%.2fx)\n",
		o.reflectN, n, bytes, 20*o.reflectN, float64(bytes)/float64(20*o.reflectN))
	return nil
}

func codeName(code int) string {
	if code == 0 {
		return "success"
	}
	return fmt.Sprint(code)
}

func runChurn(out io.Writer, t target, o options) error {
	before := sample(o.pid)
	rounds, err := churn(t, o.churnClients, o.churnFor, o.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "churn: %d clients, %d rounds in %v (allocate with a permission and a channel each, then delete all); server before: %s, threads %d\n",
		o.churnClients, len(rounds), o.churnFor, before, before.threads)
	for i, r := range rounds {
		if i > 1 && i < len(rounds)-2 {
			continue // the first rounds and the last ones say it
		}
		fmt.Fprintf(out, "churn: round %d: %d made, %d deleted, %d failed; at the peak %s; after deleting %s, threads %d\n",
			i+1, r.made, r.deleted, r.failed, r.peak, r.trough, r.trough.threads)
	}
	return nil
}

func runConnect(out io.Writer, t target, o options) error {
	var peers []netip.AddrPort
	for range o.connectPeers {
		h, err := newBlackHole()
		if err != nil {
			return err
		}
		defer h.close()
		peers = append(peers, h.addr)
	}
	before := sample(o.pid)
	got, sent, fresh, err := connectFlood(t, o.connectAllocs, peers)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "connect: %d TCP allocations x %d Connects to peers that never answer: %d sent, answered within 1 s:%v (negative: Allocate refused); server before %s, during %s; a fresh TCP client answered: %v\n",
		o.connectAllocs, o.connectPeers, sent, got, before, sample(o.pid), fresh)
	return nil
}

func runREST(out io.Writer, t target, o options) error {
	if o.restSecret == "" {
		return fmt.Errorf("needs -rest-secret")
	}
	p, err := probeREST(t, o.restSecret, o.restLife)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rest: expired REST username with a guessed secret: %s; unknown user: %s; expired with the right secret: %s\n",
		p.strangerExpired, p.strangerUnknown, p.holderExpired)
	fmt.Fprintf(out, "rest: allocation made with a credential valid %v, after it expired: Refresh %s, CreatePermission %s\n",
		o.restLife, codeName(p.refreshAfter), codeName(p.permitAfter))
	return nil
}

func runOwn(out io.Writer, t target, o options) error {
	ext, err := netip.ParseAddr(o.external)
	if err != nil {
		return fmt.Errorf("needs -external-ip: %w", err)
	}
	var metrics netip.AddrPort
	if o.metrics != "" {
		if metrics, err = netip.ParseAddrPort(o.metrics); err != nil || !metrics.Addr().IsLoopback() {
			return fmt.Errorf("-metrics %q: a loopback IP:PORT is required", o.metrics)
		}
	}
	got, err := probeOwn(t, ext, metrics)
	if err != nil {
		return err
	}
	for p, code := range got {
		fmt.Fprintf(out, "own: CreatePermission to the server's own %v: %s\n", p, codeName(code))
	}
	return nil
}

// warmUp allocates and deletes once.
func warmUp(t target) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	defer c.close()
	return steps(c, step{stun.MethodAllocate, turnload.AppendAllocate}, step{stun.MethodRefresh, turnload.AppendDelete})
}
