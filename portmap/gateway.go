package portmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrNoGateway is returned when the kernel has no IPv4 default route with a
// next hop.
var ErrNoGateway = errors.New("portmap: no IPv4 default gateway")

// Gateway is the next hop of the IPv4 default route and the interface it
// is reached through.
type Gateway struct {
	Addr      netip.Addr
	Interface string
}

// DefaultGateway reads the kernel's IPv4 default route (on Linux from
// /proc/net/route) and returns its next hop; with several default routes,
// the one of lowest metric. It returns ErrNoGateway when there is none or
// the routing table cannot be read on this system.
func DefaultGateway() (Gateway, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return Gateway{}, fmt.Errorf("%w: %v", ErrNoGateway, err)
	}
	defer f.Close()
	return parseProcRoute(f)
}

// parseProcRoute parses the format of /proc/net/route: a header line, then
// one route per line with whitespace-separated columns Iface, Destination,
// Gateway, Flags, RefCnt, Use, Metric, Mask, ...; addresses are 32-bit hex
// numbers in host byte order, flags hex.
func parseProcRoute(r io.Reader) (Gateway, error) {
	const rtfUp, rtfGateway = 0x1, 0x2
	var best Gateway
	bestMetric := uint64(1<<64 - 1)
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseUint(f[6], 10, 64)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || gw == 0 || metric >= bestMetric {
			continue
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(gw))
		best, bestMetric = Gateway{Addr: netip.AddrFrom4(a), Interface: f[0]}, metric
	}
	if err := sc.Err(); err != nil {
		return Gateway{}, fmt.Errorf("%w: %v", ErrNoGateway, err)
	}
	if !best.Addr.IsValid() {
		return Gateway{}, ErrNoGateway
	}
	return best, nil
}
