package udpio

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockBuf reads back SO_RCVBUF or SO_SNDBUF of c.
func sockBuf(t *testing.T, c *net.UDPConn, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// sysctlInt reads an integer under /proc/sys, or -1.
func sysctlInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func TestSocketBuffers(t *testing.T) {
	const size = 4 << 20
	c := listenOne(t, loop4, Options{Batch: true, ReadBuffer: size, WriteBuffer: size})
	for _, tc := range []struct {
		name   string
		opt    int
		sysctl string
	}{
		{"SO_RCVBUF", unix.SO_RCVBUF, "/proc/sys/net/core/rmem_max"},
		{"SO_SNDBUF", unix.SO_SNDBUF, "/proc/sys/net/core/wmem_max"},
	} {
		want := size // the kernel reports twice what was set
		if os.Geteuid() != 0 {
			if limit := sysctlInt(tc.sysctl); limit >= 0 && limit < want {
				want = limit // capped without CAP_NET_ADMIN
			}
		}
		if got := sockBuf(t, c.UDPConn(), tc.opt); got < want {
			t.Errorf("%s = %d, want at least %d", tc.name, got, want)
		}
	}
}

func TestSenderSend(t *testing.T) {
	src := listenOne(t, loop4, Options{})
	dst := [2]*Conn{listenOne(t, loop4, Options{Batch: true}), listenOne(t, loop4, Options{Batch: true})}
	tgt, err := NewTarget(src.UDPConn(), false)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender()
	ms := []Message{
		{Buf: []byte("a0"), Addr: dst[0].LocalAddr()},
		{Buf: []byte("b0"), Addr: dst[1].LocalAddr()},
		{Buf: []byte("bad"), Addr: netip.MustParseAddrPort("[::1]:9")}, // IPv6 on an IPv4 socket
		{Buf: []byte("a1"), Addr: dst[0].LocalAddr()},
		{Buf: []byte{}, Addr: dst[1].LocalAddr()},
	}
	sent, err := s.Send(tgt, ms)
	if sent != 4 || err == nil {
		t.Fatalf("Send = %d, %v; want 4 and an error for the IPv6 destination", sent, err)
	}
	for i, want := range []int{2, 2, -1, 2, 0} {
		if ms[i].N != want {
			t.Errorf("message %d: N = %d, want %d", i, ms[i].N, want)
		}
	}
	for i, want := range [][]string{{"a0", "a1"}, {"b0", ""}} {
		in := newMessages(4, 64)
		got := 0
		for got < len(want) {
			dst[i].UDPConn().SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := dst[i].ReadBatch(in[got:])
			if err != nil {
				t.Fatalf("receiver %d: %v", i, err)
			}
			got += k
		}
		for j, w := range want {
			if !bytes.Equal(in[j].Buf[:in[j].N], []byte(w)) || in[j].Addr != src.LocalAddr() {
				t.Errorf("receiver %d, datagram %d: %q from %v, want %q from %v", i, j, in[j].Buf[:in[j].N], in[j].Addr, w, src.LocalAddr())
			}
		}
	}
	good := ms[:2]
	if n := testing.AllocsPerRun(100, func() { s.Send(tgt, good) }); n != 0 {
		t.Errorf("Send: %v allocations", n)
	}
}
