package natlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// NatAPortMapIP is natA's second wan address when [Options.PortMapA] is set:
// the address miniupnpd reports as the router's external address.
// miniupnpd refuses an external address in a reserved range (the lab's wan
// is 203.0.113.0/24, RFC 5737), so the lab uses one from 11.0.0.0/24, which
// exists only inside the lab: the wan namespace routes it to natA and no
// namespace of the lab has a route that leaves the lab.
const NatAPortMapIP = "11.0.0.10"

// PortMapOptions prepares natA for a port-mapping daemon (miniupnpd), which
// a test then starts with [Lab.StartMiniUPnPd]. The zero value prepares
// nothing.
type PortMapOptions struct {
	// Enable gives natA the second wan address NatAPortMapIP and the
	// nftables table and chains miniupnpd fills with its mappings. natA then
	// translates lanA's outbound flows to NatAPortMapIP (keeping the mode's
	// port allocation), so STUN servers see the address the daemon reports.
	Enable bool
	// DoubleNAT keeps translating lanA's flows to NatAPublic, so that the
	// daemon's external address (NatAPortMapIP) is not the one STUN servers
	// see: natA looks like a router behind another NAT.
	DoubleNAT bool
}

// miniupnpd's nftables names. Its table must exist, with base chains that
// jump to the chains named in its configuration, before it starts. The
// base chains run just before the lab's own NAT chains, so a mapping's
// rules win over the lab's masquerade.
const (
	upnpTable       = "miniupnpd"
	upnpForward     = "miniupnpd"
	upnpNat         = "prerouting_miniupnpd"
	upnpPostrouting = "postrouting_miniupnpd"
)

// portMapRules returns the nftables table miniupnpd expects to find.
func portMapRules() string {
	return fmt.Sprintf(`table inet %[1]s {
	chain forward { type filter hook forward priority filter - 1; policy accept;
		jump %[2]s
	}
	chain %[2]s {
	}
	chain prerouting { type nat hook prerouting priority dstnat - 1; policy accept;
		jump %[3]s
	}
	chain %[3]s {
	}
	chain postrouting { type nat hook postrouting priority srcnat - 1; policy accept;
		jump %[4]s
	}
	chain %[4]s {
	}
}
`, upnpTable, upnpForward, upnpNat, upnpPostrouting)
}

// setupPortMap adds natA's second wan address, its routes in wan and on
// side B's wan host (natB, or lanB in None mode), which reach it on the
// bridge through NatAPublic (wan does not forward), and miniupnpd's table.
// It runs after natA's own rules are loaded and side B exists.
func (l *Lab) setupPortMap() error {
	nat, wan, peer := l.NS("natA"), l.NS("wan"), l.NS("natB")
	peerDev := "wan0"
	if peer == "" {
		peer, peerDev = l.NS("lanB"), "eth0"
	}
	err := runIP([][]string{
		{"-n", nat, "addr", "add", NatAPortMapIP + "/32", "dev", "wan0"},
		{"-n", wan, "route", "add", NatAPortMapIP + "/32", "via", NatAPublic, "dev", "br0"},
		{"-n", peer, "route", "add", NatAPortMapIP + "/32", "via", NatAPublic, "dev", peerDev},
	})
	if err != nil {
		return err
	}
	return runTool(nat, strings.NewReader(portMapRules()), "nft", "-f", "-")
}

// MiniUPnPdConfig selects what a miniupnpd started by [Lab.StartMiniUPnPd]
// speaks.
type MiniUPnPdConfig struct {
	// UPnP enables UPnP IGD (SSDP and SOAP); PCPAndPMP enables PCP and
	// NAT-PMP (miniupnpd has one switch for both).
	UPnP, PCPAndPMP bool
	// MinLifetime is the shortest PCP lifetime the daemon grants, in
	// seconds; 0 means 1, so that tests can watch a renewal.
	MinLifetime int
}

// StartMiniUPnPd writes a miniupnpd configuration into a temporary
// directory of the test and starts the daemon in the foreground inside
// natA, listening on lan0 and mapping on wan0 with NatAPortMapIP as its
// external address. The test's cleanup kills it by PID. The lab must have
// been made with PortMapA.Enable. StartMiniUPnPd skips the test when
// miniupnpd is not installed (or fails it under CI=true) and fails it
// when the daemon cannot start; call it from the test goroutine. It
// returns once the daemon answers on its ports.
func (l *Lab) StartMiniUPnPd(ctx context.Context, cfg MiniUPnPdConfig) *Proc {
	l.t.Helper()
	if !l.portMap.Enable {
		l.t.Fatal("natlab: StartMiniUPnPd needs Options.PortMapA.Enable")
	}
	bin, err := exec.LookPath("miniupnpd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/miniupnpd", "/sbin/miniupnpd"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		skipOrFatal(l.t, "missing miniupnpd (apt-get install -y miniupnpd-nftables)")
	}
	dir := l.t.TempDir()
	conf := filepath.Join(dir, "miniupnpd.conf")
	if err := os.WriteFile(conf, []byte(miniUPnPdConf(cfg)), 0o600); err != nil {
		l.t.Fatalf("natlab: %v", err)
	}
	p := l.Start(ctx, "natA", bin, "-d", "-f", conf, "-P", filepath.Join(dir, "miniupnpd.pid"))
	var ports []string
	if cfg.UPnP {
		ports = append(ports, ":1900")
	}
	if cfg.PCPAndPMP {
		ports = append(ports, ":5351")
	}
	if err := l.waitUDPListening(ctx, p, ports); err != nil {
		l.t.Fatalf("natlab: miniupnpd did not start: %v\n%s", err, p.Output())
	}
	return p
}

// waitUDPListening polls natA's UDP sockets ("ss -Hlun") until one is bound
// to each of the port suffixes, or p exits, or ctx ends.
func (l *Lab) waitUDPListening(ctx context.Context, p *Proc, ports []string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := l.Run(ctx, "natA", "ss", "-Hlun")
		if err != nil {
			return err
		}
		missing := false
		for _, port := range ports {
			found := false
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				found = found || (len(f) >= 4 && strings.HasSuffix(f[3], port))
			}
			missing = missing || !found
		}
		if !missing {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return errors.New("exited")
		case <-tick.C:
		}
	}
}

// miniUPnPdConf returns the daemon's configuration file.
func miniUPnPdConf(cfg MiniUPnPdConfig) string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	minLife := cfg.MinLifetime
	if minLife <= 0 {
		minLife = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ext_ifname=wan0\next_ip=%s\nlistening_ip=lan0\nhttp_port=0\n", NatAPortMapIP)
	fmt.Fprintf(&b, "enable_upnp=%s\nenable_natpmp=%s\n", yes(cfg.UPnP), yes(cfg.PCPAndPMP))
	fmt.Fprintf(&b, "min_lifetime=%d\nmax_lifetime=86400\n", minLife)
	b.WriteString("secure_mode=yes\nsystem_uptime=yes\nnotify_interval=60\nclean_ruleset_interval=0\n")
	b.WriteString("uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n")
	fmt.Fprintf(&b, "upnp_table_name=%s\nupnp_nat_table_name=%s\n", upnpTable, upnpTable)
	fmt.Fprintf(&b, "upnp_forward_chain=%s\nupnp_nat_chain=%s\nupnp_nat_postrouting_chain=%s\n", upnpForward, upnpNat, upnpPostrouting)
	b.WriteString("allow 1024-65535 10.9.1.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n")
	return b.String()
}

// MiniUPnPdRules returns natA's listing of miniupnpd's nftables table: the
// mappings the daemon has installed.
func (l *Lab) MiniUPnPdRules(ctx context.Context) (string, error) {
	out, err := l.Run(ctx, "natA", toolPath("nft"), "list", "table", "inet", upnpTable)
	return string(out), err
}

// MiniUPnPdHasMapping reports whether miniupnpd's rules in natA forward UDP
// to external port ext to internal (its dnat rule in the prerouting chain).
func (l *Lab) MiniUPnPdHasMapping(ctx context.Context, ext uint16, internal netip.AddrPort) (bool, error) {
	rules, err := l.MiniUPnPdRules(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: %s", err, rules)
	}
	for _, line := range strings.Split(rules, "\n") {
		if strings.Contains(line, fmt.Sprintf(" th dport %d ", ext)) && strings.HasSuffix(strings.TrimSpace(line), "dnat ip to "+internal.String()) {
			return true, nil
		}
	}
	return false, nil
}
