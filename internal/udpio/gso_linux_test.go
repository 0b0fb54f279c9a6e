//go:build linux

package udpio

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestGSORun(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	b := netip.MustParseAddrPort("127.0.0.1:1001")
	msg := func(to netip.AddrPort, n int) Message { return Message{Buf: make([]byte, n), Addr: to} }
	many := func(n, size int) []Message {
		ms := make([]Message, n)
		for i := range ms {
			ms[i] = msg(a, size)
		}
		return ms
	}
	for _, tc := range []struct {
		name  string
		ms    []Message
		limit int
		want  int
	}{
		{"one", []Message{msg(a, 10)}, maxBatch, 1},
		{"equal", many(5, 100), maxBatch, 5},
		{"shorter last", []Message{msg(a, 100), msg(a, 100), msg(a, 40), msg(a, 40)}, maxBatch, 3},
		{"longer ends", []Message{msg(a, 100), msg(a, 120)}, maxBatch, 1},
		{"other address ends", []Message{msg(a, 100), msg(a, 100), msg(b, 100)}, maxBatch, 2},
		{"empty first", []Message{msg(a, 0), msg(a, 0)}, maxBatch, 1},
		{"empty ends", []Message{msg(a, 10), msg(a, 0)}, maxBatch, 1},
		{"segment limit", many(maxSegments+5, 10), maxBatch, maxSegments},
		{"byte limit", many(60, 1400), maxBatch, maxGSOBytes / 1400},
		{"caller limit", many(10, 10), 3, 3},
		{"too large to group", many(3, maxSegmentSize4+1), maxBatch, 1},
		{"largest grouped", many(3, maxSegmentSize4), maxBatch, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gsoRun(tc.ms, tc.limit, maxSegmentSize4); got != tc.want {
				t.Errorf("gsoRun = %d, want %d", got, tc.want)
			}
		})
	}
}

// gsoMessages returns runs of equal-size datagrams to dst, with mixed
// sizes, a shorter last one and single ones in between; each payload
// names its position.
func gsoMessages(dst netip.AddrPort) []Message {
	var ms []Message
	add := func(n, size int) {
		for range n {
			b := fmt.Appendf(nil, "%04d-", len(ms))
			b = append(b, bytes.Repeat([]byte{'x'}, size-len(b))...)
			ms = append(ms, Message{Buf: b, Addr: dst})
		}
	}
	add(100, 100) // two runs: 64 and 36
	add(1, 60)    // ends the second run
	add(3, 300)   // a run of 3
	add(1, 1400)  // alone
	add(2, 1400)  // a run of 2
	add(1, 2000)  // too large to group
	add(5, 20)    // a run of 5
	add(1, 8)     // shorter: ends it
	add(20, 1000) // a run of 20
	add(130, 100) // more than maxSegments again
	add(1, 100)   // same size: continues the run
	return ms
}

// receiveAll reads len(want) datagrams from c and checks they are want,
// in order, from src.
func receiveAll(t *testing.T, c *Conn, src netip.AddrPort, want []Message) {
	t.Helper()
	in := newMessages(32, 4096)
	got := 0
	for got < len(want) {
		c.UDPConn().SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.ReadBatch(in)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", got, len(want), err)
		}
		for i := range k {
			if !bytes.Equal(in[i].Buf[:in[i].N], want[got].Buf) || in[i].Addr != src {
				t.Fatalf("datagram %d: %d bytes %.5q from %v, want %d bytes %.5q from %v",
					got, in[i].N, in[i].Buf[:in[i].N], in[i].Addr, len(want[got].Buf), want[got].Buf, src)
			}
			got++
		}
	}
}

// TestSenderGSO sends runs of equal-size and mixed-size datagrams: each
// arrives whole, separate and in order, and GSO stays on.
func TestSenderGSO(t *testing.T) {
	if !gsoAvailable() {
		t.Skip("the kernel has no UDP_SEGMENT")
	}
	src := listenOne(t, loop4, Options{})
	dst := listenOne(t, loop4, Options{Batch: true, ReadBuffer: 4 << 20})
	other := listenOne(t, loop4, Options{Batch: true})
	tgt, err := NewTarget(src.UDPConn(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !tgt.GSO() {
		t.Fatal("GSO off on a new Target")
	}
	s := NewSender()
	ms := gsoMessages(dst.LocalAddr())
	// A datagram to another address in the middle splits a run.
	ms = append(ms[:50], append([]Message{{Buf: []byte("other"), Addr: other.LocalAddr()}}, ms[50:]...)...)
	sent, err := s.Send(tgt, ms)
	if sent != len(ms) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, len(ms))
	}
	var toDst []Message
	for i := range ms {
		if ms[i].N != len(ms[i].Buf) {
			t.Errorf("message %d: N = %d, want %d", i, ms[i].N, len(ms[i].Buf))
		}
		if ms[i].Addr == dst.LocalAddr() {
			toDst = append(toDst, ms[i])
		}
	}
	receiveAll(t, dst, src.LocalAddr(), toDst)
	receiveAll(t, other, src.LocalAddr(), ms[50:51])
	if !tgt.GSO() || s.GSODisabled() != 0 {
		t.Errorf("GSO() = %v, GSODisabled() = %d; want true, 0", tgt.GSO(), s.GSODisabled())
	}

	// An address the socket cannot reach is skipped alone.
	bad := []Message{
		{Buf: []byte("aa"), Addr: dst.LocalAddr()},
		{Buf: []byte("bb"), Addr: dst.LocalAddr()},
		{Buf: []byte("cc"), Addr: netip.MustParseAddrPort("[::1]:9")},
		{Buf: []byte("dd"), Addr: dst.LocalAddr()},
		{Buf: []byte("ee"), Addr: dst.LocalAddr()},
	}
	sent, err = s.Send(tgt, bad)
	if sent != 4 || err == nil {
		t.Fatalf("Send = %d, %v; want 4 and an error for the IPv6 destination", sent, err)
	}
	for i, want := range []int{2, 2, -1, 2, 2} {
		if bad[i].N != want {
			t.Errorf("message %d: N = %d, want %d", i, bad[i].N, want)
		}
	}
	receiveAll(t, dst, src.LocalAddr(), []Message{bad[0], bad[1], bad[3], bad[4]})

	run := ms[:32]
	if n := testing.AllocsPerRun(50, func() { s.Send(tgt, run) }); n != 0 {
		t.Errorf("Send with GSO: %v allocations", n)
	}
}

// TestSenderGSOFallback makes the kernel refuse GSO (SO_NO_CHECK: a GSO
// send needs UDP checksums, so it fails with EINVAL): the datagrams still
// arrive, in order, and the Target stops using GSO.
func TestSenderGSOFallback(t *testing.T) {
	if !gsoAvailable() {
		t.Skip("the kernel has no UDP_SEGMENT")
	}
	src := listenOne(t, loop4, Options{})
	dst := listenOne(t, loop4, Options{Batch: true, ReadBuffer: 4 << 20})
	rc, err := src.UDPConn().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
	if serr != nil {
		t.Skipf("SO_NO_CHECK: %v", serr)
	}
	tgt, err := NewTarget(src.UDPConn(), false)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender()
	ms := gsoMessages(dst.LocalAddr())
	// A single datagram first: the first GSO run is not the first header.
	ms = append([]Message{{Buf: []byte("first"), Addr: dst.LocalAddr()}}, ms...)
	sent, err := s.Send(tgt, ms)
	if sent != len(ms) {
		t.Fatalf("Send = %d, %v; want %d", sent, err, len(ms))
	}
	for i := range ms {
		if ms[i].N != len(ms[i].Buf) {
			t.Errorf("message %d: N = %d, want %d", i, ms[i].N, len(ms[i].Buf))
		}
	}
	receiveAll(t, dst, src.LocalAddr(), ms)
	if tgt.GSO() || s.GSODisabled() != 1 {
		t.Errorf("GSO() = %v, GSODisabled() = %d; want false, 1", tgt.GSO(), s.GSODisabled())
	}
	// Later sends go out without GSO and do not count again.
	again := ms[1:40]
	if sent, err := s.Send(tgt, again); sent != len(again) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, len(again))
	}
	receiveAll(t, dst, src.LocalAddr(), again)
	if s.GSODisabled() != 1 {
		t.Errorf("GSODisabled() = %d, want 1", s.GSODisabled())
	}
}

// TestSenderGSOSmallMTU: a route whose MTU is below a run's segments
// (here IPV6_MTU 1280 on the socket) makes the kernel refuse that GSO send
// with EMSGSIZE, where a plain send is fragmented. The run still arrives,
// GSO stays on for smaller datagrams, and the Target stops grouping
// datagrams of that size.
func TestSenderGSOSmallMTU(t *testing.T) {
	if !gsoAvailable() {
		t.Skip("the kernel has no UDP_SEGMENT")
	}
	src := listenOne(t, loop6, Options{})
	dst := listenOne(t, loop6, Options{Batch: true, ReadBuffer: 4 << 20})
	rc, err := src.UDPConn().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU, 1280) })
	if serr != nil {
		t.Skipf("IPV6_MTU: %v", serr)
	}
	tgt, err := NewTarget(src.UDPConn(), true)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSender()
	ms := gsoMessages(dst.LocalAddr()) // runs of 1400 and 1000 bytes among others
	sent, err := s.Send(tgt, ms)
	if sent != len(ms) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, len(ms))
	}
	receiveAll(t, dst, src.LocalAddr(), ms)
	if !tgt.GSO() || s.GSODisabled() != 0 {
		t.Errorf("GSO() = %v, GSODisabled() = %d; want true, 0", tgt.GSO(), s.GSODisabled())
	}
	if m := tgt.gsoMax.Load(); m >= 1400 || m < 1000 {
		t.Errorf("gsoMax = %d after EMSGSIZE on 1400-byte segments; want below 1400 and at least 1000", m)
	}
	// Again: the large datagrams go one by one at once, the rest grouped.
	if sent, err := s.Send(tgt, ms); sent != len(ms) || err != nil {
		t.Fatalf("second Send = %d, %v; want %d, nil", sent, err, len(ms))
	}
	receiveAll(t, dst, src.LocalAddr(), ms)
}
