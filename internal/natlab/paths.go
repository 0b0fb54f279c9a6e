package natlab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The paths between the two sides, seen from wan: the direct path is the
// traffic between the two public addresses (NatAPublic and NatBPublic),
// which the bridge br0 forwards from one port to the other; the server
// path is the traffic from either public address to the server addresses
// (ServerIP1, ServerIP2), which wan itself receives (a TURN relay in wan,
// say). [Lab.BlockDirect] drops the direct path, so that only a relay
// works, and [Lab.PathCounts] tells how much went each way.

// Count is a number of packets and their bytes (IP headers included).
type Count struct {
	Packets, Bytes uint64
}

// Sub returns c minus an earlier count of the same counter.
func (c Count) Sub(earlier Count) Count {
	return Count{Packets: c.Packets - earlier.Packets, Bytes: c.Bytes - earlier.Bytes}
}

// PathCounts are wan's counters of the traffic between the two sides and
// to the servers, since the first call of BlockDirect or PathCounts.
type PathCounts struct {
	// Direct counts the packets between NatAPublic and NatBPublic, both
	// ways, that wan forwarded; Blocked those it dropped while the
	// direct path was blocked.
	Direct, Blocked Count
	// Server counts the packets from NatAPublic or NatBPublic to
	// ServerIP1 or ServerIP2 (any protocol).
	Server Count
}

// pathRules are the nftables tables of wan that count (and may drop) the
// two paths. Bridged frames between two ports of br0 pass the bridge
// family's forward hook, not the ip family's; frames for wan itself pass
// the ip family's input hook.
var pathRules = fmt.Sprintf(`table bridge natlab_paths {
	set blocked { type ipv4_addr; }
	counter direct { }
	counter blocked { }
	chain forward { type filter hook forward priority filter; policy accept;
		ip saddr @blocked ip daddr @blocked counter name "blocked" drop
		ip saddr { %[1]s, %[2]s } ip daddr { %[1]s, %[2]s } counter name "direct"
	}
}
table ip natlab_paths {
	counter server { }
	chain input { type filter hook input priority filter; policy accept;
		ip saddr { %[1]s, %[2]s } ip daddr { %[3]s, %[4]s } counter name "server"
	}
}
`, NatAPublic, NatBPublic, ServerIP1, ServerIP2)

// watchPaths installs pathRules in wan once.
func (l *Lab) watchPaths() error {
	l.pathsOnce.Do(func() {
		l.pathsErr = runTool(l.NS("wan"), strings.NewReader(pathRules), "nft", "-f", "-")
	})
	return l.pathsErr
}

// BlockDirect makes wan drop (block true) or forward again (false) every
// packet between the two sides' public addresses, so that the sides reach
// each other only through a server in wan, such as a TURN relay. Packets
// already queued are not affected; the NATs' conntrack entries stay.
func (l *Lab) BlockDirect(block bool) error {
	if err := l.watchPaths(); err != nil {
		return err
	}
	op := "delete"
	if block {
		op = "add"
	}
	cmd := fmt.Sprintf("%s element bridge natlab_paths blocked { %s, %s }\n", op, NatAPublic, NatBPublic)
	if !block {
		// Deleting elements that are not there fails; flushing does not.
		cmd = "flush set bridge natlab_paths blocked\n"
	}
	return runTool(l.NS("wan"), strings.NewReader(cmd), "nft", "-f", "-")
}

// counterLine matches the values of an nftables counter.
var counterLine = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// PathCounts reads wan's counters of the two paths.
func (l *Lab) PathCounts(ctx context.Context) (PathCounts, error) {
	var pc PathCounts
	if err := l.watchPaths(); err != nil {
		return pc, err
	}
	for _, c := range []struct {
		family, name string
		to           *Count
	}{{"bridge", "direct", &pc.Direct}, {"bridge", "blocked", &pc.Blocked}, {"ip", "server", &pc.Server}} {
		out, err := l.Run(ctx, "wan", toolPath("nft"), "list", "counter", c.family, "natlab_paths", c.name)
		if err != nil {
			return pc, fmt.Errorf("%w: %s", err, out)
		}
		m := counterLine.FindSubmatch(out)
		if m == nil {
			return pc, fmt.Errorf("natlab: no counter values in %q", out)
		}
		c.to.Packets, _ = strconv.ParseUint(string(m[1]), 10, 64)
		c.to.Bytes, _ = strconv.ParseUint(string(m[2]), 10, 64)
	}
	return pc, nil
}
