package netx

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

type strAddr string

func (s strAddr) Network() string { return "x" }
func (s strAddr) String() string  { return string(s) }

func TestAddrPort(t *testing.T) {
	v4 := netip.MustParseAddrPort("192.0.2.1:3478")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:3478")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:3478")
	for _, tc := range []struct {
		name string
		in   net.Addr
		want netip.AddrPort
		ok   bool
	}{
		{"udp", net.UDPAddrFromAddrPort(v4), v4, true},
		{"udp mapped", net.UDPAddrFromAddrPort(mapped), v4, true},
		{"tcp mapped", net.TCPAddrFromAddrPort(mapped), v4, true},
		{"udp6", net.UDPAddrFromAddrPort(v6), v6, true},
		{"string", strAddr("[::ffff:192.0.2.1]:3478"), v4, true},
		{"bad string", strAddr("nope"), netip.AddrPort{}, false},
		{"nil", nil, netip.AddrPort{}, false},
		{"nil udp", (*net.UDPAddr)(nil), netip.AddrPort{}, false},
		{"nil tcp", (*net.TCPAddr)(nil), netip.AddrPort{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Fatalf("ParseAddr = %v, %v; want %v, ok %v", got, err, tc.want, tc.ok)
			}
			if got := AddrPort(tc.in); got != tc.want {
				t.Fatalf("AddrPort = %v, want %v", got, tc.want)
			}
		})
	}
	if got := Unmap(mapped); got != v4 {
		t.Fatalf("Unmap(%v) = %v", mapped, got)
	}
	zoned := netip.MustParseAddrPort("[fe80::1%eth0]:1")
	if got := Unmap(zoned); got != zoned {
		t.Fatalf("Unmap(%v) = %v, want it unchanged", zoned, got)
	}
}

func TestUDPAddrAndOpError(t *testing.T) {
	if a := UDPAddr(netip.AddrPort{}); a != nil {
		t.Fatalf("UDPAddr(zero) = %#v, want a nil net.Addr", a)
	}
	if a := TCPAddr(netip.AddrPort{}); a != nil {
		t.Fatalf("TCPAddr(zero) = %#v, want a nil net.Addr", a)
	}
	ap := netip.MustParseAddrPort("192.0.2.1:9")
	if a := UDPAddr(ap); a.String() != "192.0.2.1:9" || a.Network() != "udp" {
		t.Fatalf("UDPAddr = %v", a)
	}
	if a := TCPAddr(ap); a.String() != "192.0.2.1:9" || a.Network() != "tcp" {
		t.Fatalf("TCPAddr = %v", a)
	}
	e := OpError("read", "udp", UDPAddr(ap), nil, net.ErrClosed)
	var err error = e
	if !errors.Is(err, net.ErrClosed) || e.Addr != nil || e.Source.String() != "192.0.2.1:9" {
		t.Fatalf("OpError = %v", e)
	}
}

func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d Deadline
		if d.Expired() || !d.Time().IsZero() {
			t.Fatal("the zero Deadline has expired")
		}
		// A deadline in the future expires when it passes.
		at := time.Now().Add(time.Second)
		d.Set(at)
		done := d.Done()
		if d.Expired() || !d.Time().Equal(at) {
			t.Fatal("expired early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !Closed(done) || !d.Expired() {
			t.Fatal("not expired after its time")
		}
		// Clearing it gives a fresh channel.
		d.Set(time.Time{})
		if d.Expired() {
			t.Fatal("a cleared deadline has expired")
		}
		// Moving it into the past wakes a blocked caller at once.
		d.Set(time.Now().Add(time.Hour))
		woke := make(chan struct{})
		go func() { <-d.Done(); close(woke) }()
		synctest.Wait()
		d.Set(time.Now().Add(-time.Second))
		synctest.Wait()
		if !Closed(woke) {
			t.Fatal("a past deadline did not wake the waiter")
		}
		// Moving it later before it fires: the old timer does not close
		// the new channel.
		d.Set(time.Now().Add(time.Second))
		d.Set(time.Now().Add(3 * time.Second))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if d.Expired() {
			t.Fatal("the replaced timer expired the deadline")
		}
		d.Stop()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if d.Expired() {
			t.Fatal("a stopped deadline expired")
		}
	})
}

func TestCopyBuf(t *testing.T) {
	small := []byte("datagram")
	bp := CopyBuf(small)
	if string(*bp) != "datagram" || cap(*bp) != BufSize {
		t.Fatalf("CopyBuf = %q (cap %d)", *bp, cap(*bp))
	}
	small[0] = 'X'
	if (*bp)[0] != 'd' {
		t.Fatal("CopyBuf shares the caller's bytes")
	}
	FreeBuf(bp)
	big := make([]byte, BufSize+1)
	if bp := CopyBuf(big); len(*bp) != len(big) {
		t.Fatalf("CopyBuf of %d bytes = %d bytes", len(big), len(*bp))
	} else {
		FreeBuf(bp) // not pooled: ignored
	}
	FreeBuf(nil)
	if testutil.RaceEnabled {
		t.Log("allocations not counted: the race detector makes sync.Pool drop buffers")
		return
	}
	if n := testing.AllocsPerRun(100, func() { FreeBuf(CopyBuf(small)) }); n != 0 {
		t.Fatalf("CopyBuf+FreeBuf: %v allocations, want 0", n)
	}
}
