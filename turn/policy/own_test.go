package policy

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// allowAll overrides every built-in denial, so only own addresses deny.
var allowAll = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func TestOwnExact(t *testing.T) {
	p := newPolicy(t, Config{Allow: allowAll})
	p.SetOwn([]netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:3478"),
		netip.MustParseAddrPort("[::ffff:8.8.8.8]:3478"), // normalised to 8.8.8.8:3478
		netip.MustParseAddrPort("[2606:4700::1%eth0]:5349"),
		netip.MustParseAddrPort("9.9.9.9:0"), // ignored
	})
	for _, tc := range []struct {
		peer  string
		allow bool
		want  string
	}{
		{"127.0.0.1:3478", false, "127.0.0.1 port 3478 is one of the server's own addresses"},
		{"[::ffff:127.0.0.1]:3478", false, "own"},
		{"[2002:7f00:1::]:3478", false, "embedded IPv4 127.0.0.1 (6to4) port 3478 is one"},
		{"[64:ff9b::7f00:1]:3478", false, "own"},
		{"[::127.0.0.1]:3478", false, "own"},
		{"127.0.0.1:3479", true, ""},
		{"127.0.0.2:3478", true, ""}, // an exact own address covers only itself
		{"8.8.8.8:3478", false, "own"},
		{"[2606:4700::1]:5349", false, "own"},
		{"[2606:4700::1%lo]:5349", false, "own"},
		{"[2606:4700::1]:3478", true, ""},
		{"9.9.9.9:1", true, ""},
	} {
		checkPeer(t, p, netip.MustParseAddrPort(tc.peer), tc.allow, tc.want)
	}
	// Teredo client port is the de-obfuscated one.
	td := netip.AddrPortFrom(teredo("65.54.227.120", "8.8.8.8", 3478), 9999)
	checkPeer(t, p, td, false, "embedded IPv4 8.8.8.8 (Teredo client) port 3478")

	if got := fmt.Sprint(p.Own()); got != "[8.8.8.8:3478 127.0.0.1:3478 [2606:4700::1]:5349]" {
		t.Errorf("Own() = %s", got)
	}
	// SetOwn replaces the whole set.
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3479")})
	checkPeer(t, p, netip.MustParseAddrPort("127.0.0.1:3478"), true, "")
	checkPeer(t, p, netip.MustParseAddrPort("8.8.8.8:3478"), true, "")
	checkPeer(t, p, netip.MustParseAddrPort("127.0.0.1:3479"), false, "own")
}

func TestOwnAddRemove(t *testing.T) {
	p := newPolicy(t, Config{Allow: allowAll})
	relay := netip.MustParseAddrPort("8.8.8.8:50000")
	other := netip.MustParseAddrPort("9.9.9.9:50000") // same port, same page slot
	p.AddOwn(relay)
	p.AddOwn(relay) // idempotent
	p.AddOwn(other)
	checkPeer(t, p, relay, false, "own")
	checkPeer(t, p, other, false, "own")
	p.RemoveOwn(relay)
	checkPeer(t, p, relay, true, "")
	checkPeer(t, p, other, false, "own")
	p.RemoveOwn(other)
	p.RemoveOwn(other)                                    // unknown: ignored
	p.RemoveOwn(netip.MustParseAddrPort("1.2.3.4:7"))     // never added, page absent
	p.RemoveOwn(netip.MustParseAddrPort("1.2.3.4:50001")) // never added, page present
	checkPeer(t, p, other, true, "")
	if n := len(p.Own()); n != 0 {
		t.Errorf("Own() has %d entries after removing all", n)
	}
}

func TestOwnWildcard(t *testing.T) {
	local4 := netip.MustParseAddr("8.8.8.8") // stands in for a public interface address
	local6 := netip.MustParseAddr("2606:4700::7")
	p := newPolicy(t, Config{Allow: allowAll, LocalAddrs: []netip.Addr{local4, local6}})
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")})
	for _, tc := range []struct {
		peer  string
		allow bool
	}{
		{"8.8.8.8:3478", false},
		{"[::ffff:8.8.8.8]:3478", false},
		{"127.0.0.1:3478", false},
		{"127.0.0.53:3478", false}, // the whole loopback range is local
		{"0.0.0.0:3478", false},
		{"8.8.8.8:3479", true},
		{"1.1.1.1:3478", true},        // a remote host on the same port is fine
		{"[2606:4700::7]:3478", true}, // 0.0.0.0 covers IPv4 only
		{"[::1]:3478", true},          // same
	} {
		checkPeer(t, p, netip.MustParseAddrPort(tc.peer), tc.allow, "own")
	}
	// [::] covers both families.
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("[::]:3478")})
	for _, tc := range []struct {
		peer  string
		allow bool
	}{
		{"[2606:4700::7]:3478", false},
		{"[::1]:3478", false},
		{"[::]:3478", false},
		{"8.8.8.8:3478", false},
		{"127.0.0.1:3478", false},
		{"[2606:4700::8]:3478", true},
		{"1.1.1.1:3478", true},
	} {
		checkPeer(t, p, netip.MustParseAddrPort(tc.peer), tc.allow, "own")
	}
	// The local addresses can change at run time.
	p.SetLocalAddrs([]netip.Addr{netip.MustParseAddr("1.1.1.1")})
	checkPeer(t, p, netip.MustParseAddrPort("1.1.1.1:3478"), false, "own")
	checkPeer(t, p, netip.MustParseAddrPort("8.8.8.8:3478"), true, "")
}

func TestOwnWildcardInterfaceAddrs(t *testing.T) {
	// Without LocalAddrs the policy asks the host; loopback is on every
	// host we run on, and is covered even if the query fails.
	p, err := New(Config{Allow: allowAll})
	if err != nil {
		t.Fatal(err)
	}
	p.AddOwn(netip.MustParseAddrPort("0.0.0.0:3478"))
	checkPeer(t, p, netip.MustParseAddrPort("127.0.0.1:3478"), false, "own")
	checkPeer(t, p, netip.MustParseAddrPort("1.1.1.1:3478"), true, "")
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("net.InterfaceAddrs: %v", err)
	}
	m := p.own.local.Load()
	if m == nil {
		t.Fatal("net.InterfaceAddrs was not consulted")
	}
	for _, ifa := range ifas {
		ipn, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, _ := netip.AddrFromSlice(ipn.IP)
		if _, ok := (*m)[normalAddr(a)]; !ok {
			t.Errorf("interface address %v missing from the local set", a)
		}
		if a.Unmap().Is4() { // 0.0.0.0 covers IPv4 only
			checkPeer(t, p, netip.AddrPortFrom(a, 3478), false, "own")
		}
	}
}

// TestConcurrent runs readers against writers; its value is under -race.
func TestConcurrent(t *testing.T) {
	p := newPolicy(t, Config{})
	p.SetOwn([]netip.AddrPort{netip.MustParseAddrPort("8.8.8.8:3478")})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			peer := netip.MustParseAddrPort("8.8.8.8:3478")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p.Allowed(peer) {
					t.Error("listener address allowed while relays churn")
					return
				}
				_ = p.Allowed(netip.MustParseAddrPort("8.8.8.8:50000"))
			}
		})
	}
	for i := range 2000 {
		a := netip.AddrPortFrom(netip.MustParseAddr("8.8.8.8"), uint16(49152+i%64))
		p.AddOwn(a)
		if i%3 == 0 {
			p.RemoveOwn(a)
		}
		if i%500 == 0 {
			p.SetOwn(append(p.Own(), netip.MustParseAddrPort("8.8.8.8:3478")))
		}
	}
	close(stop)
	wg.Wait()
}
