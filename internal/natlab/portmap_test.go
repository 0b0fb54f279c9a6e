//go:build linux

package natlab

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

func TestMiniUPnPdConf(t *testing.T) {
	c := miniUPnPdConf(MiniUPnPdConfig{UPnP: true})
	for _, w := range []string{"ext_ip=11.0.0.10\n", "enable_upnp=yes\n", "enable_natpmp=no\n", "min_lifetime=1\n", "upnp_nat_postrouting_chain=postrouting_miniupnpd\n"} {
		if !strings.Contains(c, w) {
			t.Errorf("config lacks %q:\n%s", w, c)
		}
	}
}

// TestMiniUPnPd checks the lab's port-mapping daemon with independent
// clients (natpmpc and upnpc from miniupnpc): each gets a mapping that
// shows in the daemon's nftables rules and carries a datagram from the wan
// to lanA.
func TestMiniUPnPd(t *testing.T) {
	natpmpc := testutil.RequireBinary(t, "natpmpc")
	upnpc := testutil.RequireBinary(t, "upnpc")
	l := New(t, Options{A: Random, B: EIM, PortMapA: PortMapOptions{Enable: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l.StartMiniUPnPd(ctx, MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
	echo := BuildBinary(t, "./testdata/udpecho")

	if out, err := l.Run(ctx, "lanA", natpmpc, "-g", NatALanIP, "-a", "40000", "40000", "udp", "60"); err != nil || !strings.Contains(string(out), "Mapped public port 40000") {
		t.Fatalf("natpmpc: %v\n%s", err, out)
	}
	if out, err := l.Run(ctx, "lanA", upnpc, "-a", LanAIP, "40001", "40001", "UDP"); err != nil || !strings.Contains(string(out), "external "+NatAPortMapIP+":40001 UDP is redirected to internal "+LanAIP+":40001") {
		t.Fatalf("upnpc: %v\n%s", err, out)
	}
	for _, port := range []string{"40000", "40001"} {
		p, _ := strconv.Atoi(port)
		ok, err := l.MiniUPnPdHasMapping(ctx, uint16(p), netip.AddrPortFrom(netip.MustParseAddr(LanAIP), uint16(p)))
		if err != nil || !ok {
			rules, _ := l.MiniUPnPdRules(ctx)
			t.Errorf("no rule for port %s in miniupnpd's table (%v):\n%s", port, err, rules)
		}
		srv := l.Start(ctx, "lanA", echo, "serve", "-listen", "0.0.0.0:"+port)
		if err := srv.WaitForOutput(ctx, "listening"); err != nil {
			t.Fatal(err)
		}
		out, err := l.Run(ctx, "wan", echo, "send", "-bind", ServerIP2+":7100", "-to", NatAPortMapIP+":"+port, "-wait", "1s")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := parseRecv(out)
		if m := mappedFrom(t, got, NatAPortMapIP+":"+port); m.Addr() != netip.MustParseAddr(ServerIP2) {
			t.Errorf("port %s: lanA saw the sender as %s, want %s", port, m, ServerIP2)
		}
		// From behind natB too: natB reaches NatAPortMapIP on the bridge.
		out, err = l.Run(ctx, "lanB", echo, "send", "-bind", "0.0.0.0:7200", "-to", NatAPortMapIP+":"+port, "-wait", "1s")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if m := mappedFrom(t, parseRecv(out), NatAPortMapIP+":"+port); m.Addr() != netip.MustParseAddr(NatBPublic) {
			t.Errorf("port %s: lanA saw lanB as %s, want %s", port, m, NatBPublic)
		}
	}
}
