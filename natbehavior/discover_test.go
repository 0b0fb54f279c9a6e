package natbehavior

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// fakeServer is a loopback STUN server for driver tests: it answers
// Binding requests with XOR-MAPPED-ADDRESS, and with OTHER-ADDRESS when
// other is set. It has one address only, so it cannot do RFC 5780.
type fakeServer struct {
	conn  *net.UDPConn
	other netip.AddrPort
	mute  bool
	wg    sync.WaitGroup
}

func startFake(t *testing.T, other netip.AddrPort, mute bool) *fakeServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{conn: c, other: other, mute: mute}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		c.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) addr() netip.AddrPort { return f.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *fakeServer) serve() {
	defer f.wg.Done()
	buf := make([]byte, 1500)
	var m stun.Message
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if f.mute || m.Parse(buf[:n]) != nil || m.Type != stun.BindingRequest {
			continue
		}
		b := stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID)
		b = stun.AppendXORAddress(b, stun.AttrXORMappedAddress, from, m.TransactionID)
		if f.other.IsValid() {
			b = stun.AppendAddress(b, stun.AttrOtherAddress, f.other)
		}
		_, _ = f.conn.WriteToUDPAddrPort(b, from)
	}
}

// checkGoroutines fails t if, after fn, more goroutines run than before
// (allowing a bounded wait for exiting ones).
func checkGoroutines(t *testing.T, fn func()) {
	t.Helper()
	before := runtime.NumGoroutine()
	fn()
	for i := 0; ; i++ {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if i == 100 {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // waiting for goroutines to exit, not synchronising
	}
}

func TestDiscoverLoopback(t *testing.T) {
	f := startFake(t, netip.AddrPort{}, false)
	checkGoroutines(t, func() {
		r, err := Discover(t.Context(), f.addr().String(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		// On loopback the mapped address is the local one: no NAT. The
		// server has no OTHER-ADDRESS, so only hairpinning can be tested,
		// and a packet to our own address arrives.
		if r.NATPresent != No || r.MappedAddress != r.LocalAddress || r.LocalAddress.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("NAT %s mapped %s local %s", r.NATPresent, r.MappedAddress, r.LocalAddress)
		}
		if r.Hairpinning != Yes || r.Mapping != EndpointIndependent || r.Filtering != BehaviorUnknown || len(r.NotRun) != 4 {
			t.Errorf("hairpinning %s mapping %s filtering %s not run %v", r.Hairpinning, r.Mapping, r.Filtering, r.NotRun)
		}
	})
}

func TestDiscoverOtherAddressOnSameIP(t *testing.T) {
	f := startFake(t, netip.MustParseAddrPort("127.0.0.1:9"), false)
	r, err := Discover(t.Context(), f.addr().String(), Config{NoHairpinning: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.OtherAddress.String() != "127.0.0.1:9" || r.Hairpinning != Unknown || len(r.NotRun) != 4 ||
		!strings.Contains(r.NotRun[0].Reason, "has the server's own IP address") {
		t.Errorf("other %s hairpinning %s not run %+v", r.OtherAddress, r.Hairpinning, r.NotRun)
	}
}

func TestDiscoverNoResponse(t *testing.T) {
	f := startFake(t, netip.AddrPort{}, true)
	checkGoroutines(t, func() {
		cfg := Config{Retransmit: stunclient.Retransmit{RTO: 20 * time.Millisecond}, Timeout: 200 * time.Millisecond}
		_, err := Discover(t.Context(), f.addr().String(), cfg)
		var te *stunclient.TimeoutError
		if !errors.As(err, &te) || te.Server != f.addr() {
			t.Fatalf("error %v, want a timeout from %s", err, f.addr())
		}
	})
}

func TestDiscoverCancel(t *testing.T) {
	f := startFake(t, netip.AddrPort{}, true)
	checkGoroutines(t, func() {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Discover(ctx, f.addr().String(), Config{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
}

func TestDiscoverLocalPort(t *testing.T) {
	f := startFake(t, netip.AddrPort{}, false)
	// Find a free port, then ask for it.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	want := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	r, err := Discover(t.Context(), f.addr().String(), Config{Local: want, NoHairpinning: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.LocalAddress != want || r.MappedAddress != want {
		t.Errorf("local %s mapped %s, want %s", r.LocalAddress, r.MappedAddress, want)
	}
	_, err = Discover(t.Context(), f.addr().String(), Config{Local: netip.MustParseAddrPort("[::1]:0")})
	if err == nil || !strings.Contains(err.Error(), "different address families") {
		t.Errorf("IPv6 local address for an IPv4 server: %v", err)
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		network, in, want string
	}{
		{"udp", "127.0.0.1", "127.0.0.1:3478"},
		{"udp", "127.0.0.1:5000", "127.0.0.1:5000"},
		{"udp", "::1", "[::1]:3478"},
		{"udp", "[::1]", "[::1]:3478"},
		{"udp", "[::1]:5000", "[::1]:5000"},
		{"udp", "localhost:5000", ""}, // 127.0.0.1 or ::1, from /etc/hosts
		{"udp4", "localhost", "127.0.0.1:3478"},
	} {
		got, err := Resolve(t.Context(), c.network, c.in)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.in, err)
			continue
		}
		if c.want != "" && got.String() != c.want {
			t.Errorf("Resolve(%q) = %s, want %s", c.in, got, c.want)
		}
		if c.want == "" && (!got.Addr().IsLoopback() || got.Port() != 5000) {
			t.Errorf("Resolve(%q) = %s", c.in, got)
		}
	}
	for _, c := range []struct {
		network, in, msg string
	}{
		{"udp", "127.0.0.1:99999", "invalid port"},
		{"udp", "127.0.0.1:0", "invalid port"},
		{"udp", ":3478", "no host name"},
		{"udp", "bad..name", "cannot resolve bad..name"},
		{"udp6", "127.0.0.1", "no IPv6 address"},
		{"udp4", "::1", "no IPv4 address"},
	} {
		_, err := Resolve(t.Context(), c.network, c.in)
		var re *ResolveError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Resolve(%s, %q) = %v, want a ResolveError with %q", c.network, c.in, err, c.msg)
		}
	}
}
