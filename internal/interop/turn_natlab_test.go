package interop

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

const turnRelayPkg = "./testdata/turnrelay"

// relayedLine is how testdata/turnrelay prints its relayed address.
var relayedLine = regexp.MustCompile(`(?m)^relayed (\S+)$`)

// clientMappedLine is how testdata/turnrelay prints its XOR-MAPPED-ADDRESS.
var clientMappedLine = regexp.MustCompile(`(?m)^mapped (\S+)$`)

// recvLine is how testdata/turnrelay prints a received datagram.
var recvLine = regexp.MustCompile(`(?m)^recv (.+) from (\S+)$`)

// TestTurnRelayThroughNATs runs `icebreaker serve` in the NAT lab's wan
// and relays between a client in lanA and a peer in lanB, both behind
// symmetric NATs (address-and-port-dependent mapping and filtering), where
// no direct path exists. The client allocates and permits natB's public
// IP; the peer sends to the relayed address first, which opens natB for
// the relay's answers; then pings and pongs flow both ways through the
// relay. The server's policy denies 203.0.113.0/24 (TEST-NET-3) by
// default, so the test allows it explicitly, and a second server on
// ServerIP2 with the default policy shows the 403 that the allow lifts.
func TestTurnRelayThroughNATs(t *testing.T) {
	t.Parallel()
	lab := natlab.New(t, natlab.Options{A: natlab.Random, B: natlab.Random})
	bin := icebreaker(t)
	relay := natlab.BuildBinary(t, turnRelayPkg)
	ctx := testContext(t)

	server := natlab.ServerIP1 + ":3478"
	strict := natlab.ServerIP2 + ":3478"
	common := []string{"serve", "--rendezvous", "off", "--port", "3478", "--user-db", "none", "--user", turnUser + ":" + turnPass}
	srv := lab.Start(ctx, "wan", bin, append(common, "--listen", natlab.ServerIP1, "--allow-peer", "203.0.113.0/24")...)
	def := lab.Start(ctx, "wan", bin, append(common, "--listen", natlab.ServerIP2)...)
	for _, p := range []struct {
		proc *natlab.Proc
		addr string
	}{{srv, server}, {def, strict}} {
		if err := p.proc.WaitForOutput(ctx, p.addr); err != nil {
			t.Fatal(err)
		}
	}
	peerIP := natlab.NatBPublic

	// The default policy refuses the peer.
	out, err := lab.Run(ctx, "lanA", relay, "client", "-server", strict,
		"-user", turnUser, "-pass", turnPass, "-permit", peerIP, "-timeout", "10s")
	if !strings.Contains(string(out), "forbidden") {
		t.Errorf("permission for %s with the default policy: %v, want 403\n%s", peerIP, err, out)
	}

	client := lab.Start(ctx, "lanA", relay, "client", "-server", server,
		"-user", turnUser, "-pass", turnPass, "-permit", peerIP, "-timeout", "15s")
	if err := client.WaitForOutput(ctx, "permitted"); err != nil {
		t.Fatal(err)
	}
	m := relayedLine.FindStringSubmatch(client.Output())
	if m == nil {
		t.Fatalf("client printed no relayed address:\n%s", client.Output())
	}
	relayed, err := netip.ParseAddrPort(m[1])
	if err != nil || relayed.Addr() != netip.MustParseAddr(natlab.ServerIP1) {
		t.Fatalf("relayed address %q (%v), want one on %s", m[1], err, natlab.ServerIP1)
	}
	// The server saw the client through natA.
	if m := clientMappedLine.FindStringSubmatch(client.Output()); m == nil || !strings.HasPrefix(m[1], natlab.NatAPublic+":") {
		t.Errorf("client's mapped address %v, want natA's public IP %s", m, natlab.NatAPublic)
	}
	peer := lab.Start(ctx, "lanB", relay, "peer", "-to", relayed.String(), "-timeout", "15s")

	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v\n%s\npeer:\n%s\nserver:\n%s", err, client.Output(), peer.Output(), srv.Output())
	}
	// The client heard hello and three pongs, all from natB's public IP
	// (on the port natB mapped towards the relay).
	got := recvLine.FindAllStringSubmatch(client.Output(), -1)
	var pongs int
	for _, g := range got {
		from, err := netip.ParseAddrPort(g[2])
		if err != nil || from.Addr() != netip.MustParseAddr(peerIP) {
			t.Errorf("client received %q from %s, want from %s", g[1], g[2], peerIP)
		}
		if strings.HasPrefix(g[1], "pong ") {
			pongs++
		}
	}
	if pongs < 3 || !strings.Contains(client.Output(), "done") {
		t.Errorf("client got %d pongs, want 3:\n%s", pongs, client.Output())
	}
	// The peer heard the pings from the relayed address, and only from it.
	if err := peer.WaitForOutput(ctx, "recv ping 3 from"); err != nil {
		t.Fatal(err)
	}
	for _, g := range recvLine.FindAllStringSubmatch(peer.Output(), -1) {
		if g[2] != relayed.String() {
			t.Errorf("peer received %q from %s, want from the relayed address %v", g[1], g[2], relayed)
		}
	}
	if srv.Exited() {
		t.Fatalf("server exited:\n%s", srv.Output())
	}
	t.Logf("relayed %v; client:\n%s", relayed, client.Output())
}
