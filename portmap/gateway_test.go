package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// hostHex writes a as /proc/net/route does: a 32-bit number in host byte
// order.
func hostHex(a string) string {
	b := netip.MustParseAddr(a).As4()
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b[:]))
}

func TestParseProcRoute(t *testing.T) {
	head := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	line := func(ifc, dst, gw, flags, metric, mask string) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t0\t0\t%s\t%s\t0\t0\t0\n", ifc, dst, gw, flags, metric, mask)
	}
	for _, c := range []struct {
		name, table string
		want        Gateway
	}{
		{"one", head + line("eth0", "00000000", hostHex("10.9.1.1"), "0003", "0", "00000000") +
			line("eth0", hostHex("10.9.1.0"), "00000000", "0001", "0", hostHex("255.255.255.0")),
			Gateway{netip.MustParseAddr("10.9.1.1"), "eth0"}},
		{"lowest metric", head + line("wlan0", "00000000", hostHex("192.168.1.1"), "0003", "600", "00000000") +
			line("eth0", "00000000", hostHex("192.168.0.1"), "0003", "100", "00000000"),
			Gateway{netip.MustParseAddr("192.168.0.1"), "eth0"}},
		{"no gateway flag", head + line("tun0", "00000000", "00000000", "0001", "0", "00000000"), Gateway{}},
		{"down", head + line("eth0", "00000000", hostHex("10.0.0.1"), "0002", "0", "00000000"), Gateway{}},
		{"garbage", head + "eth0 zz yy\n" + line("eth0", "0000000G", "1", "3", "0", "0"), Gateway{}},
		{"empty", "", Gateway{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseProcRoute(strings.NewReader(c.table))
			if !c.want.Addr.IsValid() {
				if !errors.Is(err, ErrNoGateway) {
					t.Fatalf("got %v, %v; want ErrNoGateway", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func FuzzParseProcRoute(f *testing.F) {
	f.Add("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\neth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := parseProcRoute(strings.NewReader(s))
		if err == nil && (!g.Addr.Is4() || g.Addr.IsUnspecified()) {
			t.Fatalf("gateway %v", g)
		}
	})
}
