package turnserver

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// nullConn is a client Conn that discards what is sent to it.
type nullConn struct{}

func (nullConn) Network() string                      { return "udp" }
func (nullConn) LocalAddr() netip.AddrPort            { return netip.AddrPort{} }
func (nullConn) RemoteAddr() netip.AddrPort           { return netip.AddrPort{} }
func (nullConn) WriteTo([]byte, netip.AddrPort) error { return nil }
func (nullConn) KeepOpen(bool)                        {}
func (nullConn) Detach(func(net.Conn, []byte)) error  { return stunserver.ErrNotStream }

// allocator drives Allocate requests straight into a Server, with made-up
// client addresses, for measurements that need many allocations.
type allocator struct {
	s     *Server
	nonce string
	key   []byte
	local netip.AddrPort
	out   []byte
	msg   stun.Message
}

func newAllocator(t testing.TB, s *Server) *allocator {
	t.Helper()
	al := &allocator{s: s, local: netip.MustParseAddrPort("127.0.0.1:3478"), out: make([]byte, 0, 1024)}
	al.key, _ = stun.LongTermKey(stun.PasswordMD5, "alice", realm, users["alice"])
	return al
}

// challenge learns the nonce for a client at from: nonces are bound to
// the client's transport address.
func (al *allocator) challenge(tb testing.TB, from netip.AddrPort) {
	tb.Helper()
	resp := al.do(from, false)
	nonce, err := resp.Nonce()
	if err != nil {
		tb.Fatal(err)
	}
	al.nonce = nonce
}

func (al *allocator) do(from netip.AddrPort, auth bool) *stun.Message {
	id := stun.NewTransactionID()
	b := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}, id)
	b = turn.AppendRequestedTransport(b, turn.ProtoUDP)
	if auth {
		b = stun.AppendAttrString(b, stun.AttrUsername, "alice")
		b = stun.AppendAttrString(b, stun.AttrRealm, realm)
		b = stun.AppendAttrString(b, stun.AttrNonce, al.nonce)
		b = stun.AppendMessageIntegrity(b, al.key)
	}
	b = stun.AppendFingerprint(b)
	var req stun.Message
	if err := req.Parse(b); err != nil {
		panic(err)
	}
	out := al.s.ServeSTUN(al.out[:0], &stunserver.Request{Msg: &req, From: from, Local: al.local, Network: "udp", Conn: nullConn{}})
	if err := al.msg.Parse(append([]byte(nil), out...)); err != nil {
		panic(err)
	}
	return &al.msg
}

// TestMemoryPerAllocation measures what an idle UDP allocation costs the
// process: Go heap and goroutine stacks, and resident memory, over a few
// thousand allocations. The bound is loose (the target is 4 KB; coturn
// needs 22.5 KB); the number is logged.
func TestMemoryPerAllocation(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of sockets")
	}
	n := 4000
	if v, err := strconv.Atoi(os.Getenv("TURN_MEM_ALLOCATIONS")); err == nil && v > 0 {
		n = v
	}
	auth, _ := turnauth.New(turnauth.Config{Realm: realm, Users: users})
	s, err := New(Config{Auth: auth, Policy: allowAll, RelayIPv4: loop4, Quotas: Quotas{AllocationsPerUser: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	al := newAllocator(t, s)
	al.challenge(t, netip.MustParseAddrPort("127.0.0.1:2"))
	al.do(netip.MustParseAddrPort("127.0.0.1:2"), true) // warm up: janitor, pools

	heap0, rss0 := memNow()
	for i := range n {
		from := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10000+i))
		al.challenge(t, from)
		m := al.do(from, true)
		if m.Type.Class != stun.ClassSuccess {
			code, reason, _ := m.ErrorCode()
			t.Fatalf("allocation %d: %d %s", i, code, reason)
		}
	}
	heap1, rss1 := memNow()
	perHeap := float64(heap1-heap0) / float64(n)
	perRSS := float64(rss1-rss0) / float64(n)
	t.Logf("%d idle allocations: %.0f bytes each of Go heap and stacks, %.0f bytes each of RSS", n, perHeap, perRSS)
	if perHeap > 8192 {
		t.Errorf("%.0f bytes of heap and stack per idle allocation", perHeap)
	}
	if st := s.Stats(); st.Allocations != n+1 {
		t.Errorf("Allocations = %d", st.Allocations)
	}
}

// memNow returns the Go heap and stack in use and the resident set size,
// after a collection.
func memNow() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = ms.HeapInuse + ms.StackInuse
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return heap, rss
}
