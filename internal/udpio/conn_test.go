package udpio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

var (
	loop4 = netip.MustParseAddrPort("127.0.0.1:0")
	loop6 = netip.MustParseAddrPort("[::1]:0")
)

// modes are the two I/O paths; every behaviour test runs on both.
var modes = []struct {
	name string
	opt  Options
}{
	{"plain", Options{}},
	{"batch", Options{Batch: true}},
}

func listenOne(t testing.TB, addr netip.AddrPort, opt Options) *Conn {
	t.Helper()
	cs, err := ListenGroup(addr, 1, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs[0].Close() })
	return cs[0]
}

func TestListenGroupSharesPort(t *testing.T) {
	if !ReusePortSupported {
		t.Skip("no SO_REUSEPORT on this platform")
	}
	cs, err := ListenGroup(loop4, 4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	if len(cs) != 4 {
		t.Fatalf("got %d sockets, want 4", len(cs))
	}
	p := cs[0].LocalAddr()
	if p.Port() == 0 || p.Addr() != loop4.Addr() {
		t.Fatalf("first socket bound to %v", p)
	}
	for _, c := range cs[1:] {
		if c.LocalAddr() != p {
			t.Errorf("socket bound to %v, want %v", c.LocalAddr(), p)
		}
	}
}

func TestListenGroupRefusesTakenPort(t *testing.T) {
	if !ReusePortSupported {
		t.Skip("no SO_REUSEPORT on this platform")
	}
	other, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loop4))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	taken := other.LocalAddr().(*net.UDPAddr).AddrPort()
	cs, err := ListenGroup(taken, 2, Options{})
	if !errors.Is(err, ErrAddrInUse) {
		for _, c := range cs {
			c.Close()
		}
		t.Fatalf("ListenGroup on a taken port: err = %v, want ErrAddrInUse", err)
	}
}

func TestListenGroupBadArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr netip.AddrPort
		n    int
	}{
		{"zero sockets", loop4, 0},
		{"invalid address", netip.AddrPort{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cs, err := ListenGroup(tc.addr, tc.n, Options{}); err == nil {
				cs[0].Close()
				t.Fatal("no error")
			}
		})
	}
}

// echo reads one batch on c and writes every datagram back to its sender.
func echo(t testing.TB, c *Conn, ms []Message) int {
	t.Helper()
	n, err := c.ReadBatch(ms)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	out := make([]Message, n)
	for i := range n {
		out[i] = Message{Buf: ms[i].Buf[:ms[i].N], Addr: ms[i].Addr}
	}
	if sent, err := c.WriteBatch(out); err != nil || sent != n {
		t.Fatalf("WriteBatch: sent %d of %d, %v", sent, n, err)
	}
	return n
}

func newMessages(n, size int) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, size)
	}
	return ms
}

func TestRoundTrip(t *testing.T) {
	for _, mode := range modes {
		for _, fam := range []struct{ name, listen, dial string }{
			{"ipv4", "127.0.0.1:0", "127.0.0.1"},
			{"ipv6", "[::1]:0", "::1"},
			{"dualstack-v4-client", "[::]:0", "127.0.0.1"},
		} {
			t.Run(mode.name+"/"+fam.name, func(t *testing.T) {
				srv, err := ListenGroup(netip.MustParseAddrPort(fam.listen), 1, mode.opt)
				if err != nil {
					t.Skipf("cannot listen on %s: %v", fam.listen, err)
				}
				defer srv[0].Close()
				s := srv[0]
				to := netip.AddrPortFrom(netip.MustParseAddr(fam.dial), s.LocalAddr().Port())
				cl, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(fam.dial)})
				if err != nil {
					t.Skipf("cannot open client on %s: %v", fam.dial, err)
				}
				defer cl.Close()
				const count = 10
				for i := range count {
					if _, err := cl.WriteToUDPAddrPort([]byte(fmt.Sprintf("msg %d", i)), to); err != nil {
						t.Fatal(err)
					}
				}
				clAddr := cl.LocalAddr().(*net.UDPAddr).AddrPort()
				want := netip.AddrPortFrom(clAddr.Addr().Unmap(), clAddr.Port())
				ms := newMessages(4, 1500)
				for got := 0; got < count; {
					n, err := s.ReadBatch(ms)
					if err != nil {
						t.Fatal(err)
					}
					for i := range n {
						if ms[i].Addr != want {
							t.Errorf("source %v, want %v", ms[i].Addr, want)
						}
						if w := fmt.Sprintf("msg %d", got+i); string(ms[i].Buf[:ms[i].N]) != w {
							t.Errorf("datagram %q, want %q", ms[i].Buf[:ms[i].N], w)
						}
						ms[i].Buf = ms[i].Buf[:ms[i].N]
					}
					if sent, err := s.WriteBatch(ms[:n]); err != nil || sent != n {
						t.Fatalf("WriteBatch: sent %d of %d: %v", sent, n, err)
					}
					for i := range ms {
						ms[i].Buf = ms[i].Buf[:cap(ms[i].Buf)]
					}
					got += n
				}
				cl.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 100)
				for i := range count {
					n, from, err := cl.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("reply %d: %v", i, err)
					}
					if from.Port() != s.LocalAddr().Port() {
						t.Errorf("reply from %v", from)
					}
					if w := fmt.Sprintf("msg %d", i); string(buf[:n]) != w {
						t.Errorf("reply %q, want %q", buf[:n], w)
					}
				}
			})
		}
	}
}

func TestTruncated(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			s := listenOne(t, loop4, mode.opt)
			cl, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.LocalAddr()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if _, err := cl.Write(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			ms := newMessages(1, 10)
			if _, err := s.ReadBatch(ms); err != nil {
				t.Fatal(err)
			}
			if !ms[0].Truncated || ms[0].N > 10 {
				t.Errorf("Truncated = %v, N = %d; want true, <= 10", ms[0].Truncated, ms[0].N)
			}
		})
	}
}

func TestWriteBatchSkipsBadDestination(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			s := listenOne(t, loop4, mode.opt)
			cl, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loop4))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			to := cl.LocalAddr().(*net.UDPAddr).AddrPort()
			ms := []Message{
				{Buf: []byte("one"), Addr: to},
				{Buf: []byte("bad"), Addr: netip.MustParseAddrPort("[2001:db8::1]:9")}, // IPv6 on an IPv4 socket
				{Buf: []byte("two"), Addr: to},
			}
			sent, err := s.WriteBatch(ms)
			if sent != 2 || err == nil {
				t.Fatalf("WriteBatch = %d, %v; want 2 and an error", sent, err)
			}
			cl.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 10)
			for _, want := range []string{"one", "two"} {
				n, _, err := cl.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) != want {
					t.Errorf("got %q, want %q", buf[:n], want)
				}
			}
		})
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cs, err := ListenGroup(loop4, 1, mode.opt)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := cs[0].ReadBatch(newMessages(2, 100))
				done <- err
			}()
			cs[0].Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("ReadBatch after Close: %v, want net.ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadBatch still blocked 10 s after Close")
			}
		})
	}
}

func TestBatchedReportsMode(t *testing.T) {
	s := listenOne(t, loop4, Options{})
	if s.Batched() {
		t.Error("plain Conn reports Batched")
	}
	b := listenOne(t, loop4, Options{Batch: true})
	if b.Batched() != reusePortSupported { // both exist exactly on Linux
		t.Errorf("Batched() = %v on this platform", b.Batched())
	}
}

func TestNoAllocs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			s := listenOne(t, loop4, mode.opt)
			c := listenOne(t, loop4, mode.opt)
			out := []Message{{Buf: []byte("ping"), Addr: s.LocalAddr()}}
			in := newMessages(1, 64)
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := c.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				if _, err := s.ReadBatch(in); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per write+read, want 0", allocs)
			}
		})
	}
}

func TestAddrInUseKeepsCause(t *testing.T) {
	other, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loop4))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, n := range []int{1, 2} {
		if !ReusePortSupported && n > 1 {
			continue
		}
		_, err := ListenGroup(other.LocalAddr().(*net.UDPAddr).AddrPort(), n, Options{})
		var op *net.OpError
		if !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) || !errors.As(err, &op) {
			t.Errorf("n=%d: %v; want ErrAddrInUse wrapping a *net.OpError with EADDRINUSE", n, err)
		}
	}
}
