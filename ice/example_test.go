package ice_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// Two agents connect: each gathers its candidates, the peers exchange
// credentials and candidates through some signaling channel (here plain
// variables; candidates travel as "a=candidate" strings, RFC 8839), then
// one Dials and the other Accepts (RFC 8445: the controlling and the
// controlled agent), and both get a net.Conn over the selected pair. Here
// both gather only on 127.0.0.1; the zero GatherConfig would use every
// non-loopback address.
func ExampleAgent_Dial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	loopback := ice.GatherConfig{
		IncludeLoopback: true,
		IPFilter:        func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") },
	}
	alice, err := ice.NewAgent(ice.AgentConfig{Gather: loopback})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close() // closes the Conn too
	bob, err := ice.NewAgent(ice.AgentConfig{Gather: loopback})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// What each side sends the other over signaling: ufrag, pwd and the
	// candidate lines.
	offer := func(a *ice.Agent) (ufrag, pwd string, lines []string) {
		cands, err := a.Gather(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range cands {
			lines = append(lines, c.String())
		}
		ufrag, pwd = a.LocalCredentials()
		return ufrag, pwd, lines
	}
	parse := func(lines []string) []ice.Candidate {
		var cands []ice.Candidate
		for _, l := range lines {
			c, err := ice.ParseCandidate(l)
			if err != nil {
				log.Fatal(err)
			}
			cands = append(cands, c)
		}
		return cands
	}
	aUfrag, aPwd, aLines := offer(alice)
	bUfrag, bPwd, bLines := offer(bob)

	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := bob.Accept(ctx, aUfrag, aPwd, parse(aLines))
		if err != nil {
			log.Print(err)
		}
		accepted <- conn // nil on error
	}()
	aConn, err := alice.Dial(ctx, bUfrag, bPwd, parse(bLines))
	bConn := <-accepted
	if err != nil || bConn == nil {
		log.Fatal("no connection: ", err)
	}

	if _, err := aConn.Write([]byte("hello, bob")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 1500)
	bConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := bConn.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob read %q\n", buf[:n])
	pair, _ := alice.SelectedPair()
	fmt.Println("selected pair:", pair.Local.Type, "->", pair.Remote.Type)
	// Output:
	// bob read "hello, bob"
	// selected pair: host -> host
}

// TestExamplesLeaveNoGoroutine checks that the examples stop everything
// they start.
func TestExamplesLeaveNoGoroutine(t *testing.T) {
	testutil.CheckExamples(t, ExampleAgent_Dial)
}
