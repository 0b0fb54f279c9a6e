package ice

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
)

// loopbackOnly gathers on 127.0.0.1 alone.
func loopbackOnly() GatherConfig {
	return GatherConfig{
		IncludeLoopback: true,
		IPFilter:        func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") },
	}
}

// checkGoroutines fails if the goroutine count does not come back to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	n := 0
	for range 200 {
		if n = runtime.NumGoroutine(); n <= base {
			return
		}
		time.Sleep(10 * time.Millisecond) // bounded retry, not synchronisation
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("goroutines: %d, want <= %d\n%s", n, base, buf[:runtime.Stack(buf, true)])
}

// connectPair gathers on two agents and connects them, A controlling.
func connectPair(t testing.TB, cfgA, cfgB AgentConfig) (a, b *Agent, ca, cb net.Conn) {
	t.Helper()
	return connectPairExtra(t, cfgA, cfgB, nil)
}

// connectPairExtra is connectPair where A's Dial also gets the remote
// candidates extra, after B's own.
func connectPairExtra(t testing.TB, cfgA, cfgB AgentConfig, extra []Candidate) (a, b *Agent, ca, cb net.Conn) {
	t.Helper()
	return connectPairSignal(t, cfgA, cfgB, func(cs []Candidate) []Candidate { return append(cs, extra...) }, nil)
}

// connectPairSignal is connectPair where the candidates go through the
// signalling functions toA (B's, for A's Dial) and toB (A's, for B's
// Accept) when set: a path that changes them, as a NAT would.
func connectPairSignal(t testing.TB, cfgA, cfgB AgentConfig, toA, toB func([]Candidate) []Candidate) (a, b *Agent, ca, cb net.Conn) {
	t.Helper()
	return connectPairBefore(t, cfgA, cfgB, toA, toB, nil)
}

// connectPairBefore is connectPairSignal that calls before, when set, once
// both agents have gathered their candidates, before Dial and Accept.
func connectPairBefore(t testing.TB, cfgA, cfgB AgentConfig, toA, toB func([]Candidate) []Candidate,
	before func(a, b *Agent, candsA, candsB []Candidate)) (a, b *Agent, ca, cb net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var err error
	if a, err = NewAgent(cfgA); err != nil {
		t.Fatal(err)
	}
	if b, err = NewAgent(cfgB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	candsA, err := a.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	candsB, err := b.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(a, b, candsA, candsB)
	}
	if toA != nil {
		candsB = toA(candsB)
	}
	if toB != nil {
		candsA = toB(candsA)
	}
	ua, pa := a.LocalCredentials()
	ub, pb := b.LocalCredentials()
	var wg sync.WaitGroup
	var errB error
	wg.Go(func() { cb, errB = b.Accept(ctx, ua, pa, candsA) })
	ca, err = a.Dial(ctx, ub, pb, candsB)
	wg.Wait()
	if err != nil || errB != nil {
		t.Fatalf("Dial: %v, Accept: %v", err, errB)
	}
	return a, b, ca, cb
}

func TestLocalCredentials(t *testing.T) {
	a, err := NewAgent(AgentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAgent(AgentConfig{})
	u, p := a.LocalCredentials()
	u2, p2 := b.LocalCredentials()
	if len(u) < 4 || len(p) < 22 || !allChars(u, isIceChar) || !allChars(p, isIceChar) {
		t.Fatalf("credentials %q %q do not follow RFC 8445, Section 5.3", u, p)
	}
	if u == u2 || p == p2 {
		t.Fatalf("two agents drew the same credentials %q/%q", u, p)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAgentConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AgentConfig
	}{
		{"ufrag without pwd", AgentConfig{LocalUfrag: "abcd"}},
		{"short pwd", AgentConfig{LocalUfrag: "abcd", LocalPwd: "short"}},
		{"bad chars", AgentConfig{LocalUfrag: "ab d", LocalPwd: strings.Repeat("x", 22)}},
		{"no family", AgentConfig{Gather: GatherConfig{DisableIPv4: true, DisableIPv6: true}}},
		{"bad server", AgentConfig{Gather: GatherConfig{STUNServers: []netip.AddrPort{{}}}}},
		{"negative Ta", AgentConfig{Ta: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewAgent(tc.cfg); err == nil {
				t.Fatal("NewAgent accepted a bad config")
			}
		})
	}
}

func TestAgentsConnectLoopback(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	var trickled []Candidate
	ended := false
	cfgA := AgentConfig{Gather: loopbackOnly()}
	cfgA.Gather.Trickle = func(c Candidate, end bool) {
		mu.Lock()
		defer mu.Unlock()
		if end {
			ended = true
		} else {
			trickled = append(trickled, c)
		}
	}
	a, b, ca, cb := connectPair(t, cfgA, AgentConfig{Gather: loopbackOnly()})
	if !ended || len(trickled) != 1 || trickled[0].Type != TypeHost {
		t.Fatalf("trickle: %v, end %v; want one host candidate then the end", trickled, ended)
	}
	pa, _ := a.SelectedPair()
	pb, _ := b.SelectedPair()
	if ca.LocalAddr().String() != cb.RemoteAddr().String() || ca.RemoteAddr().String() != cb.LocalAddr().String() {
		t.Fatalf("A %v -> %v, B %v -> %v", ca.LocalAddr(), ca.RemoteAddr(), cb.LocalAddr(), cb.RemoteAddr())
	}
	if pa.Local.Type != TypeHost || pa.Remote.Type != TypeHost || pb.Local.Addr != pa.Remote.Addr {
		t.Fatalf("selected A %v, B %v", &pa, &pb)
	}

	buf := make([]byte, 1500)
	for i, dir := range []struct {
		from, to net.Conn
	}{{ca, cb}, {cb, ca}, {ca, cb}} {
		msg := []byte("hello " + strings.Repeat("x", i))
		if _, err := dir.from.Write(msg); err != nil {
			t.Fatal(err)
		}
		dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := dir.to.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
		}
	}
	// RFC 7983: a datagram that looks like STUN is refused, not lost.
	if _, err := ca.Write([]byte{1, 2, 3}); !errors.Is(err, ErrNotData) {
		t.Fatalf("Write of a STUN-like datagram: %v, want ErrNotData", err)
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, base)
}

func TestAgentsConnectIPv6Loopback(t *testing.T) {
	ln, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	gc := GatherConfig{
		IncludeLoopback: true,
		IPFilter:        func(a netip.Addr) bool { return a == netip.IPv6Loopback() },
	}
	_, _, ca, cb := connectPair(t, AgentConfig{Gather: gc}, AgentConfig{Gather: gc})
	if _, err := cb.Write([]byte("v6")); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	if n, err := ca.Read(buf); err != nil || string(buf[:n]) != "v6" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestConnDeadlines(t *testing.T) {
	_, _, ca, cb := connectPair(t, AgentConfig{Gather: loopbackOnly()}, AgentConfig{Gather: loopbackOnly()})
	buf := make([]byte, 100)
	isTimeout := func(err error) bool {
		var op *net.OpError
		return errors.As(err, &op) && errors.Is(err, os.ErrDeadlineExceeded) && op.Timeout()
	}

	// A deadline in the past fails at once, even with data queued.
	if _, err := cb.Write([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Unix(1, 0))
	if _, err := ca.Read(buf); !isTimeout(err) {
		t.Fatalf("Read past deadline: %v", err)
	}
	// Clearing it lets the queued datagram through.
	ca.SetReadDeadline(time.Time{})
	if n, err := ca.Read(buf); err != nil || string(buf[:n]) != "queued" {
		t.Fatalf("Read after clearing: %q, %v", buf[:n], err)
	}

	// Moving the deadline into the past wakes a blocked Read.
	errc := make(chan error, 1)
	go func() { _, err := ca.Read(buf); errc <- err }()
	ca.SetReadDeadline(time.Now().Add(time.Hour))
	ca.SetReadDeadline(time.Now().Add(-time.Second))
	if err := <-errc; !isTimeout(err) {
		t.Fatalf("blocked Read: %v", err)
	}

	// A deadline that expires while Read waits.
	ca.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := ca.Read(buf); !isTimeout(err) {
		t.Fatalf("Read: %v", err)
	}

	cb.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := cb.Write([]byte("late")); !isTimeout(err) {
		t.Fatalf("Write past deadline: %v", err)
	}
	cb.SetDeadline(time.Time{})
	if _, err := cb.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
}

func TestConnClose(t *testing.T) {
	base := runtime.NumGoroutine()
	a, _, ca, cb := connectPair(t, AgentConfig{Gather: loopbackOnly()}, AgentConfig{Gather: loopbackOnly()})
	isClosed := func(err error) bool {
		var op *net.OpError
		return errors.As(err, &op) && errors.Is(err, net.ErrClosed)
	}
	errc := make(chan error, 1)
	go func() { _, err := ca.Read(make([]byte, 10)); errc <- err }()
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !isClosed(err) {
		t.Fatalf("Read blocked over Close: %v", err)
	}
	if err := ca.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Agent.Close after Conn.Close: %v", err)
	}
	if _, err := ca.Write([]byte("x")); !isClosed(err) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := ca.Read(make([]byte, 10)); !isClosed(err) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := a.Dial(t.Context(), "abcd", strings.Repeat("p", 22), nil); err == nil {
		t.Fatal("Dial on a closed agent succeeded")
	}
	cb.Close()
	checkGoroutines(t, base)
}

func TestDialFailsAndStops(t *testing.T) {
	base := runtime.NumGoroutine()
	a, err := NewAgent(AgentConfig{Gather: loopbackOnly(), Rc: 2, Rm: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A peer that never answers: a bound socket nobody reads.
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	remote := Candidate{Foundation: "x", Component: 1, Priority: 1, Type: TypeHost,
		Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort()}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := a.Dial(ctx, "abcd", strings.Repeat("p", 22), []Candidate{remote}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Dial: %v, want ErrFailed", err)
	}
	if _, err := a.Accept(ctx, "abcd", strings.Repeat("p", 22), nil); !errors.Is(err, ErrStarted) {
		t.Fatalf("second session: %v, want ErrStarted", err)
	}

	// A cancelled context stops a Dial that can never succeed.
	b, err := NewAgent(AgentConfig{Gather: loopbackOnly()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cctx, ccancel := context.WithCancel(t.Context())
	go func() { b.Gather(cctx); ccancel() }()
	if _, err := b.Accept(cctx, "abcd", strings.Repeat("p", 22), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v, want context.Canceled", err)
	}
	a.Close()
	b.Close()
	checkGoroutines(t, base)
}

// TestGatherSrflxRedundantOnLoopback asks an in-process STUN server for
// the reflexive address of a loopback socket: it is the host address, so
// the srflx candidate is redundant and pruned (RFC 8445, Section 5.1.3).
func TestGatherSrflxRedundantOnLoopback(t *testing.T) {
	base := runtime.NumGoroutine()
	srv, err := stunserver.Listen(stunserver.Config{UDP: netip.MustParseAddrPort("127.0.0.1:0"), UDPSockets: 1})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	stop := sync.OnceFunc(func() { srv.Close(); <-served })
	defer stop()

	var trickled []Candidate
	gc := loopbackOnly()
	gc.STUNServers = []netip.AddrPort{srv.Addrs()[0].Addr}
	gc.Trickle = func(c Candidate, end bool) {
		if !end {
			trickled = append(trickled, c)
		}
	}
	a, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	cands, err := a.Gather(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Responses < 1 {
		t.Fatalf("server answered %d Bindings, want 1", st.Responses)
	}
	if len(cands) != 1 || cands[0].Type != TypeHost || len(trickled) != 1 {
		t.Fatalf("candidates %v, trickled %v; want the host candidate alone", cands, trickled)
	}
	a.Close()
	stop()
	checkGoroutines(t, base)
}

// TestGatherSrflx answers the Binding with another mapped address, as a
// NAT would make it, and expects a server-reflexive candidate whose base
// and related address are the host socket.
func TestGatherSrflx(t *testing.T) {
	fake, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	mapped := netip.MustParseAddrPort("192.0.2.7:40000")
	go func() { // ends when fake is closed
		buf := make([]byte, 1500)
		for {
			n, from, err := fake.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m stun.Message
			if m.Parse(buf[:n]) != nil || m.Type != stun.BindingRequest {
				continue
			}
			b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
			b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, mapped, m.TransactionID)
			fake.WriteToUDPAddrPort(b, from)
		}
	}()
	gc := loopbackOnly()
	gc.STUNServers = []netip.AddrPort{fake.LocalAddr().(*net.UDPAddr).AddrPort()}
	var trickled []Candidate
	gc.Trickle = func(c Candidate, end bool) {
		if !end {
			trickled = append(trickled, c)
		}
	}
	a, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cands, err := a.Gather(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 || len(trickled) != 2 {
		t.Fatalf("candidates %v; want host and srflx", cands)
	}
	host, srflx := cands[0], cands[1]
	if srflx.Type != TypeServerReflexive || srflx.Addr != mapped || srflx.Related != host.Addr ||
		srflx.Base != host.Addr || srflx.Priority >= host.Priority || srflx.Foundation == host.Foundation {
		t.Fatalf("srflx %v (base %v), host %v", srflx, srflx.Base, host)
	}
}

// TestAgentDropsJunk sends garbage to an agent's socket while it connects.
func TestAgentDropsJunk(t *testing.T) {
	_, b, ca, cb := connectPair(t, AgentConfig{Gather: loopbackOnly()}, AgentConfig{Gather: loopbackOnly()})
	p, _ := b.SelectedPair()
	junk, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(p.Local.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	for _, pkt := range [][]byte{{0, 1}, {0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42}, []byte("from a stranger")} {
		junk.Write(pkt)
	}
	if _, err := ca.Write([]byte("real")); err != nil {
		t.Fatal(err)
	}
	cb.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := cb.Read(buf)
	if err != nil || string(buf[:n]) != "real" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if st := b.Stats(); st.Malformed == 0 {
		t.Fatalf("stats %+v: the stranger's datagram was not counted", st)
	}
}

// TestConnReadsFromAnyPeerCandidate: Conn.Read takes data from each of
// the peer's candidates, not only the selected pair's (RFC 8445, Section
// 12.2): a peer that switches pairs loses nothing. Data from an address
// that is no candidate of the peer is still dropped.
func TestConnReadsFromAnyPeerCandidate(t *testing.T) {
	// A second candidate of b's side that answers no check: a plain
	// socket, signalled with a low priority so the real one is selected.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	extra := Candidate{Foundation: "other", Component: 1, Transport: TransportUDP, Priority: 1, Type: TypeHost,
		Addr: other.LocalAddr().(*net.UDPAddr).AddrPort()}
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	a, _, ca, _ := connectPairExtra(t, AgentConfig{Gather: loopbackOnly()}, AgentConfig{Gather: loopbackOnly()}, []Candidate{extra})
	sel, _ := a.SelectedPair()
	if sel.Remote.Addr == extra.Addr {
		t.Fatalf("the silent candidate was selected: %v", sel)
	}
	to := net.UDPAddrFromAddrPort(sel.Local.BaseAddr())
	before := a.Stats().Malformed
	if _, err := stranger.WriteToUDP([]byte("from a stranger"), to); err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteToUDP([]byte("from the other candidate"), to); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := ca.Read(buf)
	if err != nil || string(buf[:n]) != "from the other candidate" {
		t.Fatalf("read %q, %v; want the datagram of the peer's second candidate", buf[:n], err)
	}
	if got := a.Stats().Malformed; got <= before {
		t.Errorf("malformed %d, was %d: the stranger's datagram was not dropped and counted", got, before)
	}
}

// TestKeepalive: an idle selected pair gets Binding indications (RFC 8445,
// Section 11), which the peer takes without counting them as junk, and the
// path still carries data afterwards.
func TestKeepalive(t *testing.T) {
	a, b, ca, cb := connectPair(t, AgentConfig{Gather: loopbackOnly()},
		AgentConfig{Gather: loopbackOnly(), Keepalive: 5 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Keepalives < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: no keepalives", b.Stats())
		}
		time.Sleep(5 * time.Millisecond) // bounded poll of a counter
	}
	if _, err := cb.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	if n, err := ca.Read(buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if st := a.Stats(); st.Malformed != 0 {
		t.Fatalf("peer stats %+v: keepalives counted as junk", st)
	}
}

// TestGatherTrickleMayClose: a Trickle callback that closes the Agent
// (on the first server-reflexive candidate, while a second STUN server
// has not answered) does not deadlock Gather: Close waits for the
// gathering goroutines, which must not block on their results.
func TestGatherTrickleMayClose(t *testing.T) {
	base := runtime.NumGoroutine()
	// A STUN server that maps to another address, so that the srflx
	// candidate is not pruned as redundant, and one that never answers.
	fake, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan struct{})
	go func() { // ends when fake is closed
		defer close(answered)
		buf := make([]byte, 1500)
		for {
			n, from, err := fake.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m stun.Message
			if m.Parse(buf[:n]) != nil || m.Type != stun.BindingRequest {
				continue
			}
			b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
			b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, netip.MustParseAddrPort("192.0.2.7:40000"), m.TransactionID)
			fake.WriteToUDPAddrPort(b, from)
		}
	}()
	defer func() { fake.Close(); <-answered }()
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var a *Agent
	gc := loopbackOnly()
	gc.STUNServers = []netip.AddrPort{fake.LocalAddr().(*net.UDPAddr).AddrPort(), silent.LocalAddr().(*net.UDPAddr).AddrPort()}
	gc.STUNTimeout = 300 * time.Millisecond
	closed := make(chan struct{})
	gc.Trickle = func(c Candidate, end bool) {
		if !end && c.Type == TypeServerReflexive {
			a.Close()
			close(closed)
		}
	}
	if a, err = NewAgent(AgentConfig{Gather: gc}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := a.Gather(t.Context()); done <- err }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Gather did not return after its Trickle callback closed the Agent")
	}
	select {
	case <-closed:
	default:
		t.Fatal("no server-reflexive candidate was trickled")
	}
	fake.Close()
	<-answered
	checkGoroutines(t, base)
}

// TestAgentContext: the context the Agent's goroutines use ends when the
// Agent closes, or with its parent, without the Agent storing one.
func TestAgentContext(t *testing.T) {
	a, err := NewAgent(AgentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	parent, cancelParent := context.WithCancel(t.Context())
	byParent, cancel1 := a.context(parent)
	defer cancel1()
	byClose, cancel2 := a.context(context.Background())
	defer cancel2()
	if byClose.Err() != nil || byParent.Err() != nil {
		t.Fatal("a new context has ended")
	}
	cancelParent()
	<-byParent.Done()
	if byClose.Err() != nil {
		t.Fatal("the parent of another context ended this one")
	}
	a.Close()
	select {
	case <-byClose.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the context")
	}
	if !errors.Is(byClose.Err(), context.Canceled) {
		t.Fatalf("Err = %v, want context.Canceled", byClose.Err())
	}
}
