package natbehavior_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	nb "github.com/icebreaker-net/icebreaker/natbehavior"
)

// TestLabPortMap runs `icebreaker nat` in lanA behind a symmetric NAT
// whose router runs miniupnpd: the report lists the three protocols, the
// router's external address, a mapping that lets the server's alternate
// address in (RESPONSE-PORT with CHANGE-REQUEST), and a verdict that says
// direct connections will work with any peer. Behind a double NAT it says
// why the mapping is not used; without the daemon it says the gateway does
// not answer.
func TestLabPortMap(t *testing.T) {
	t.Parallel()
	bin := natlab.BuildBinary(t, icebreakerPkg)
	for _, c := range []struct {
		name                     string
		daemon, doubleNAT, noMap bool
	}{
		{"daemon", true, false, false},
		{"double NAT", true, true, false},
		{"no daemon", false, false, false},
		{"no-portmap", true, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			lab := natlab.New(t, natlab.Options{A: natlab.Random, B: natlab.None, PortMapA: natlab.PortMapOptions{Enable: true, DoubleNAT: c.doubleNAT}})
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			startOurServer(ctx, t, lab, bin)
			var daemon *natlab.Proc
			if c.daemon {
				daemon = lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
			}
			args := []string{"--hairpin=false"}
			if c.noMap {
				args = append(args, "--no-portmap")
			}
			r, err := labNat(ctx, lab, bin, natlab.ServerIP1, args...)
			if err != nil {
				t.Fatal(err)
			}
			pm := r.PortMap
			if c.noMap {
				if pm != nil || strings.Contains(daemon.Output(), natlab.LanAIP) {
					t.Errorf("--no-portmap: report %+v; the daemon saw lanA:\n%s", pm, daemon.Output())
				}
				return
			}
			if pm == nil {
				t.Fatalf("no port-mapping report: %+v", r)
			}
			t.Logf("%s: %+v\nverdict: %s", c.name, *pm, r.Verdict)
			if pm.Gateway != netip.MustParseAddr(natlab.NatALanIP) {
				t.Errorf("gateway %v, want %s", pm.Gateway, natlab.NatALanIP)
			}
			switch {
			case !c.daemon:
				if pm.PCP || pm.NATPMP || pm.UPnP || pm.Mapped.IsValid() || !strings.Contains(r.Verdict, "does not answer PCP, NAT-PMP or UPnP IGD") {
					t.Errorf("without a daemon: %+v, verdict %q", *pm, r.Verdict)
				}
			case c.doubleNAT:
				if !pm.DoubleNAT || r.MappedAddress.Addr().String() != natlab.NatAPublic || !strings.Contains(r.Verdict, "double NAT") {
					t.Errorf("double NAT: %+v (public %v), verdict %q", *pm, r.MappedAddress, r.Verdict)
				}
			default:
				if !pm.PCP || !pm.NATPMP || !pm.UPnP {
					t.Errorf("protocols answered: PCP %v, NAT-PMP %v, UPnP %v; want all", pm.PCP, pm.NATPMP, pm.UPnP)
				}
				if pm.External != netip.MustParseAddr(natlab.NatAPortMapIP) || pm.Mapped.Addr() != pm.External || pm.DoubleNAT {
					t.Errorf("external %v, mapped %v, double NAT %v", pm.External, pm.Mapped, pm.DoubleNAT)
				}
				if pm.Reachable != nb.Yes || !strings.Contains(r.Verdict, "direct connections will work with any peer through a port mapping") {
					t.Errorf("reachable %v, verdict %q", pm.Reachable, r.Verdict)
				}
			}
		})
	}
}
