package ice

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// TestCheckerLite: a full controlling agent against a lite one (RFC 8445,
// Section 2.5): the lite agent sends no request of its own, and selects
// the pair the full agent nominates.
func TestCheckerLite(t *testing.T) {
	for _, fullControlling := range []bool{true, false} {
		name := map[bool]string{true: "full controlling", false: "full starts controlled"}[fullControlling]
		t.Run(name, func(t *testing.T) {
			ca, cb := pairCfg(fullControlling)
			cb.Controlling, cb.Lite = false, true
			la, lb := host("a1", "10.0.0.1:1000", 65535), host("b1", "10.0.0.2:2000", 65535)
			a := mustChecker(t, []Candidate{la}, remote(lb), ca)
			b := mustChecker(t, []Candidate{lb}, remote(la), cb)
			h := newHarness(t, a, b, []string{"10.0.0.1:1000"}, []string{"10.0.0.2:2000"})
			if !h.run(5*time.Second, h.connected) {
				t.Fatalf("not connected: full %v, lite %v", a.State(), b.State())
			}
			if !a.Controlling() || b.Controlling() {
				t.Errorf("roles: full controlling %v, lite controlling %v", a.Controlling(), b.Controlling())
			}
			for _, s := range h.log {
				if s.agent == 1 && s.msg == stun.BindingRequest {
					t.Fatalf("the lite agent sent a check: %+v", s)
				}
			}
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			if pa.Local.Addr != pb.Remote.Addr || pa.Remote.Addr != pb.Local.Addr {
				t.Fatalf("different paths: full %v, lite %v", pa.String(), pb.String())
			}
		})
	}
	if _, err := NewChecker(nil, nil, CheckerConfig{Lite: true, Controlling: true, LocalUfrag: "a", LocalPwd: "b", RemoteUfrag: "c", RemotePwd: "d"}); err == nil {
		t.Error("a controlling lite Checker was accepted")
	}
}

// TestAgentLite: our full agent dials a lite agent on loopback; data
// flows both ways; a lite agent refuses to Dial and to use servers.
func TestAgentLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	full, err := NewAgent(AgentConfig{Gather: loopbackOnly()})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	lite, err := NewAgent(AgentConfig{Gather: loopbackOnly(), Lite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if _, err := lite.Dial(ctx, "abcd", "abcdefghijklmnopqrstuvwxyz", nil); err == nil {
		t.Error("a lite agent dialled")
	}
	cf, err := full.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := lite.Gather(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uf, pf := full.LocalCredentials()
	ul, pl := lite.LocalCredentials()
	var wg sync.WaitGroup
	var connL net.Conn
	var errL error
	wg.Go(func() { connL, errL = lite.Accept(ctx, uf, pf, cf) })
	connF, err := full.Dial(ctx, ul, pl, cl)
	wg.Wait()
	if err != nil || errL != nil {
		t.Fatalf("Dial: %v, lite Accept: %v", err, errL)
	}
	echo(t, connF, connL, "to the lite agent")
	echo(t, connL, connF, "from the lite agent")

	bad := AgentConfig{Lite: true}
	bad.Gather.STUNServers = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3478")}
	if _, err := NewAgent(bad); err == nil {
		t.Error("a lite agent with a STUN server was accepted")
	}
}
