package portmap_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

// TestMiniUPnPd runs our client, forced to one protocol at a time, inside
// lanA against miniupnpd on natA (the lab's random NAT, with the daemon's
// rules on top): the mapping is created, shows in the daemon's nftables
// rules, carries a datagram from the wan to lanA, is renewed, and is gone
// from the rules after Close.
func TestMiniUPnPd(t *testing.T) {
	for _, proto := range []string{"pcp", "nat-pmp", "upnp"} {
		t.Run(proto, func(t *testing.T) {
			lab := natlab.New(t, natlab.Options{A: natlab.Random, B: natlab.EIM, PortMapA: natlab.PortMapOptions{Enable: true}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: proto == "upnp", PCPAndPMP: proto != "upnp"})
			client := natlab.BuildBinary(t, "./testdata/pmclient")
			echo := natlab.BuildBinary(t, "../internal/natlab/testdata/udpecho")
			local := netip.MustParseAddrPort(natlab.LanAIP + ":40000")

			p := lab.StartWithStdin(ctx, "lanA", client, "-local", local.String(), "-proto", proto, "-lifetime", "4s", "-timeout", "2s")
			if err := p.WaitForOutput(ctx, "mapped "); err != nil {
				t.Fatalf("%v\n%s", err, p.Output())
			}
			ext := field(t, p.Output(), "mapped", 2)
			if ext.Addr() != netip.MustParseAddr(natlab.NatAPortMapIP) {
				t.Fatalf("external address %v, want %s\n%s", ext, natlab.NatAPortMapIP, p.Output())
			}
			if ok, err := lab.MiniUPnPdHasMapping(ctx, ext.Port(), local); err != nil || !ok {
				rules, _ := lab.MiniUPnPdRules(ctx)
				t.Fatalf("mapping %v -> %v not in the daemon's rules (%v):\n%s", ext, local, err, rules)
			}
			out, err := lab.Run(ctx, "wan", echo, "send", "-bind", natlab.ServerIP2+":7100", "-to", ext.String(), "-wait", "300ms")
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if err := p.WaitForOutput(ctx, "recv "+natlab.ServerIP2+":7100 hello"); err != nil {
				t.Fatalf("no datagram from the wan through %v: %v\n%s", ext, err, p.Output())
			}
			if err := p.WaitForOutput(ctx, "renewed 1 "+ext.String()); err != nil {
				t.Fatalf("no renewal: %v\n%s", err, p.Output())
			}
			p.Stdin().Close()
			if err := p.WaitForOutput(ctx, "closed <nil>"); err != nil {
				t.Fatalf("close: %v\n%s", err, p.Output())
			}
			if ok, err := lab.MiniUPnPdHasMapping(ctx, ext.Port(), local); err != nil || ok {
				rules, _ := lab.MiniUPnPdRules(ctx)
				t.Fatalf("mapping still in the daemon's rules after Close (%v):\n%s", err, rules)
			}
		})
	}
}

// TestNoDaemon: with no daemon on the gateway (closed ports, or a router
// that drops the requests silently), Map gives up with an error and no
// mapping. How long it takes is logged; timings go to the bench.
func TestNoDaemon(t *testing.T) {
	for _, silent := range []bool{false, true} {
		t.Run(fmt.Sprintf("silent=%v", silent), func(t *testing.T) {
			lab := natlab.New(t, natlab.Options{A: natlab.Random, B: natlab.EIM, PortMapA: natlab.PortMapOptions{Enable: true}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if silent {
				for _, cmd := range [][]string{
					{"add", "table", "ip", "silent"},
					{"add", "chain", "ip", "silent", "in", "{ type filter hook input priority -5; }"},
					{"add", "rule", "ip", "silent", "in", "iifname", "lan0", "udp", "dport", "{ 1900, 5351 }", "drop"},
				} {
					if out, err := lab.Run(ctx, "natA", "nft", cmd...); err != nil {
						t.Fatalf("%v\n%s", err, out)
					}
				}
			}
			client := natlab.BuildBinary(t, "./testdata/pmclient")
			out, err := lab.Run(ctx, "lanA", client, "-local", natlab.LanAIP+":40000")
			if err != nil || !strings.Contains(string(out), "nomap ") || strings.Contains(string(out), "mapped ") {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
}

// field returns word n (counting from 0) of the first line starting with
// prefix, as an address.
func field(t *testing.T, out, prefix string, n int) netip.AddrPort {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > n && f[0] == prefix {
			ap, err := netip.ParseAddrPort(f[n])
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			return ap
		}
	}
	t.Fatal(fmt.Sprintf("no %q line in\n%s", prefix, out))
	return netip.AddrPort{}
}
