package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// The attacks of unauthenticated (and authenticated) TCP holding, each
// against `icebreaker serve` in its own process, built without -race, with
// its resident memory read from /proc. Counts stay at a few thousand
// connections; each test crosses the bound it checks.

const (
	holdUser  = "u"
	holdPass  = "p"
	holdRealm = "hold.test"
)

// holdServer is a running `icebreaker serve` process.
type holdServer struct {
	p                 *testutil.Process
	tcp, tls, metrics netip.AddrPort
}

var holdLine = regexp.MustCompile(`(?m)^  (tcp|tls|metrics) +(?:http://)?(\S+?)(?:/metrics)?$`)

// buildServe builds the icebreaker binary (without -race) into a
// temporary directory.
func buildServe(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and opens thousands of connections; not in -short")
	}
	bin := filepath.Join(t.TempDir(), "icebreaker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startHold starts bin serve on 127.0.0.1 with free ports, the test user,
// metrics, TLS with a fresh certificate, peers on loopback allowed, and
// env (KEY=VALUE of ICEBREAKER_ variables) on top of a clean environment.
func startHold(t *testing.T, bin string, env ...string) *holdServer {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := testutil.SelfSignedCert(t, "localhost").WriteFiles(t, dir)
	metricsPort := testutil.FreePort(t)
	args := []string{"serve", "--rendezvous", "off", "--listen", "127.0.0.1", "--port", "0", "--tls-port", "0",
		"--tls-cert", certFile, "--tls-key", keyFile, "--user-db", "none", "--user", holdUser + ":" + holdPass,
		"--realm", holdRealm, "--allow-peer", "127.0.0.0/8", "--metrics", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--log-level", "error"}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := testutil.Command(ctx, bin, args...)
	cmd.Env = []string{"ICEBREAKER_DATA_DIR=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Env = append(cmd.Env, env...)
	p := testutil.Start(t, cmd)
	s := &holdServer{p: p}
	parse := func(out string) bool {
		for _, m := range holdLine.FindAllStringSubmatch(out, -1) {
			ap, err := netip.ParseAddrPort(m[2])
			if err != nil {
				continue
			}
			switch m[1] {
			case "tcp":
				s.tcp = ap
			case "tls":
				s.tls = ap
			case "metrics":
				s.metrics = ap
			}
		}
		return s.tcp.IsValid() && s.tls.IsValid() && s.metrics.IsValid()
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := p.WaitFor(wctx, "its addresses", parse); err != nil {
		t.Fatal(err)
	}
	parse(p.Output())
	return s
}

// rss returns the server's resident memory in bytes (VmRSS).
func (s *holdServer) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// settledRSS returns the server's RSS once two readings 500 ms apart
// differ by less than 1 MB (at most 20 s).
func (s *holdServer) settledRSS(t *testing.T) int64 {
	t.Helper()
	last := s.rss(t)
	for range 40 {
		time.Sleep(500 * time.Millisecond)
		now := s.rss(t)
		if d := now - last; d < 1<<20 && d > -1<<20 {
			return now
		}
		last = now
	}
	return last
}

// metric returns the sum of the samples of a metric, -1 if it is absent.
func (s *holdServer) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.metrics.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

// waitMetric waits up to 20 s until the metric reaches want and returns
// its last value.
func (s *holdServer) waitMetric(t *testing.T, name string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := s.metric(t, name)
		if v >= want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialFrom connects to the server's addr from the loopback address src.
func dialFrom(src netip.Addr, addr netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr.String())
}

// stream is one client connection with STUN framing on the read side.
type stream struct {
	c   net.Conn
	br  *bufio.Reader
	key []byte // long-term key once authenticated
	non string
}

func newStream(c net.Conn) *stream { return &stream{c: c, br: bufio.NewReader(c)} }

// roundTrip sends a request and reads the response with its ID.
func (s *stream) roundTrip(req []byte) (*stun.Message, error) {
	s.c.SetDeadline(time.Now().Add(10 * time.Second))
	defer s.c.SetDeadline(time.Time{})
	if _, err := s.c.Write(req); err != nil {
		return nil, err
	}
	for {
		var hdr [stun.HeaderSize]byte
		if _, err := io.ReadFull(s.br, hdr[:4]); err != nil {
			return nil, err
		}
		n, err := turn.ChannelDataFrameLength(hdr[:4], true)
		if err != nil {
			if _, err := io.ReadFull(s.br, hdr[4:]); err != nil {
				return nil, err
			}
			if n, err = stun.MessageLength(hdr[:]); err != nil {
				return nil, err
			}
			b := make([]byte, n)
			copy(b, hdr[:])
			if _, err := io.ReadFull(s.br, b[stun.HeaderSize:]); err != nil {
				return nil, err
			}
			m := new(stun.Message)
			if err := m.Parse(b); err != nil {
				return nil, err
			}
			return m, nil
		}
		if _, err := io.CopyN(io.Discard, s.br, int64(n-4)); err != nil {
			return nil, err
		}
	}
}

// binding does one Binding transaction.
func (s *stream) binding() error {
	id := stun.NewTransactionID()
	m, err := s.roundTrip(stun.AppendHeader(nil, stun.BindingRequest, id))
	if err != nil {
		return err
	}
	if m.TransactionID != id || m.Type != stun.BindingSuccess {
		return fmt.Errorf("binding answered %v", m.Type)
	}
	return nil
}

// request builds a TURN request of method m with attrs, authenticated
// when the stream has a key.
func (s *stream) request(method stun.Method, attrs func(b []byte, id stun.TransactionID) []byte) ([]byte, stun.TransactionID) {
	id := stun.NewTransactionID()
	b := stun.AppendHeader(nil, stun.Type{Method: method, Class: stun.ClassRequest}, id)
	b = attrs(b, id)
	if s.key != nil {
		b = stun.AppendAttrString(b, stun.AttrUsername, holdUser)
		b = stun.AppendAttrString(b, stun.AttrRealm, holdRealm)
		b = stun.AppendAttrString(b, stun.AttrNonce, s.non)
		b = stun.AppendMessageIntegrity(b, s.key)
	}
	return stun.AppendFingerprint(b), id
}

func udpTransport(b []byte, _ stun.TransactionID) []byte {
	return turn.AppendRequestedTransport(b, turn.ProtoUDP)
}

// challenge sends an unauthenticated Allocate and expects 401.
func (s *stream) challenge() error {
	req, _ := s.request(stun.MethodAllocate, udpTransport)
	m, err := s.roundTrip(req)
	if err != nil {
		return err
	}
	if code, _, _ := m.ErrorCode(); code != stun.CodeUnauthorized {
		return fmt.Errorf("unauthenticated Allocate answered %v %d", m.Type, code)
	}
	if s.non, err = m.Nonce(); err != nil {
		return err
	}
	return nil
}

// allocate authenticates and allocates a UDP relay, then binds channel
// 0x4000 to peer.
func (s *stream) allocate(key []byte, peer netip.AddrPort) error {
	if err := s.challenge(); err != nil {
		return err
	}
	s.key = key
	req, _ := s.request(stun.MethodAllocate, udpTransport)
	m, err := s.roundTrip(req)
	if err != nil {
		return err
	}
	if m.Type.Class != stun.ClassSuccess {
		code, reason, _ := m.ErrorCode()
		return fmt.Errorf("Allocate: %d %s", code, reason)
	}
	req, _ = s.request(stun.MethodChannelBind, func(b []byte, id stun.TransactionID) []byte {
		b = turn.AppendChannelNumber(b, 0x4000)
		return stun.AppendXORAddress(b, stun.AttrXORPeerAddress, peer, id)
	})
	if m, err = s.roundTrip(req); err != nil {
		return err
	}
	if m.Type.Class != stun.ClassSuccess {
		code, reason, _ := m.ErrorCode()
		return fmt.Errorf("ChannelBind: %d %s", code, reason)
	}
	return nil
}

// dialMany opens n connections to the TCP listener, from 127.0.x.y
// addresses 250 apiece, and runs prep on each; they close when the test
// ends.
func (s *holdServer) dialMany(t *testing.T, n int, prep func(*stream) error) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := dialFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)}), s.tcp)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := prep(newStream(c)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	return conns
}

// holdPeer returns the address of a UDP peer on loopback, open until the
// test ends, and the test user's long-term key.
func holdPeer(t *testing.T) (netip.AddrPort, []byte) {
	t.Helper()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	key, err := stun.LongTermKey(stun.PasswordMD5, holdUser, holdRealm, holdPass)
	if err != nil {
		t.Fatal(err)
	}
	return peer.LocalAddr().(*net.UDPAddr).AddrPort(), key
}

// closedByServer reports whether the server closed c within d: a read
// that ends in EOF or a reset rather than a timeout.
func closedByServer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [4096]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
}

// partialChannelData is the start of a ChannelData frame on channel
// 0x4000 that announces 65,000 bytes and brings 60,000 of them.
func partialChannelData() []byte {
	b := turn.AppendChannelData(nil, 0x4000, make([]byte, 65000), true)
	return b[:4+60000]
}

// TestServeTCPHolding turns the attacks of issue 13, item 4 into tests;
// see each subtest. One build serves them all.
func TestServeTCPHolding(t *testing.T) {
	bin := buildServe(t)

	// One address filled every connection slot of a listener, and the
	// TLS handshakes of one address were unbounded. Now one address holds
	// at most tcp.conns_per_ip on the TCP and the TLS listener together,
	// and makes at most tcp.tls_handshakes_per_ip handshakes per second;
	// another address is still served.
	t.Run("conns per IP", func(t *testing.T) {
		const perIP, slots, tries = 40, 300, 300
		s := startHold(t, bin, "ICEBREAKER_TCP_CONNS_PER_IP="+strconv.Itoa(perIP), "ICEBREAKER_TCP_MAX_CONNS="+strconv.Itoa(slots),
			"ICEBREAKER_TCP_TLS_HANDSHAKES_PER_IP=100000")
		attacker, other := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
		for _, tr := range []string{"tcp", "tls"} {
			addr := s.tcp
			if tr == "tls" {
				addr = s.tls
			}
			served := 0
			for range tries {
				c, err := dialFrom(attacker, addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if tr == "tls" {
					tc := tls.Client(c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}) // loopback test server
					defer tc.Close()
					c = tc
				}
				if newStream(c).binding() == nil {
					served++
				}
			}
			t.Logf("%s: %d of %d connections from one address served (tcp.conns_per_ip %d, tcp.max_conns %d)", tr, served, tries, perIP, slots)
			// The TCP connections still hold their share on the TLS
			// listener's turn: the limit is the daemon's, not a listener's.
			if tr == "tcp" && served > perIP || tr == "tls" && served > 0 {
				t.Errorf("%s: %d connections from one address served", tr, served)
			}
			c, err := dialFrom(other, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tr == "tls" {
				c = tls.Client(c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
			}
			if err := newStream(c).binding(); err != nil {
				t.Errorf("%s: another address not served: %v", tr, err)
			}
		}
		if got := s.metric(t, "icebreaker_stun_tcp_per_ip_rejected_total"); got < 2*tries-perIP {
			t.Errorf("icebreaker_stun_tcp_per_ip_rejected_total = %v, want at least %d", got, 2*tries-perIP)
		}
	})

	t.Run("TLS handshakes per IP", func(t *testing.T) {
		const rate, tries = 5, 40
		s := startHold(t, bin, "ICEBREAKER_TCP_TLS_HANDSHAKES_PER_IP="+strconv.Itoa(rate))
		start := time.Now()
		ok := 0
		for range tries {
			c, err := dialFrom(netip.MustParseAddr("127.0.0.1"), s.tls)
			if err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.Handshake() == nil && newStream(tc).binding() == nil {
				ok++
			}
			tc.Close()
		}
		// A bucket of rate tokens, refilled at rate per second.
		bound := rate + int(float64(rate)*time.Since(start).Seconds()) + 1
		t.Logf("%d of %d TLS handshakes from one address in %v (bound %d)", ok, tries, time.Since(start), bound)
		if ok > bound {
			t.Errorf("%d handshakes served, at most %d allowed", ok, bound)
		}
		c, err := dialFrom(netip.MustParseAddr("127.0.0.2"), s.tls)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := newStream(tls.Client(c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})).binding(); err != nil {
			t.Errorf("another address not served: %v", err)
		}
		if got := s.metric(t, "icebreaker_stun_tls_handshakes_refused_total"); got < float64(tries-bound) {
			t.Errorf("icebreaker_stun_tls_handshakes_refused_total = %v, want at least %d", got, tries-bound)
		}
	})

	// A peer that sent one byte at a time kept a half-read frame as long
	// as each byte came within the idle timeout, and forever on a
	// connection that holds an allocation. Now the whole frame must arrive
	// within tcp.message_timeout.
	t.Run("message deadline", func(t *testing.T) {
		s := startHold(t, bin, "ICEBREAKER_TCP_MESSAGE_TIMEOUT=1s", "ICEBREAKER_TCP_IDLE_TIMEOUT=3s")
		peer, key := holdPeer(t)
		bind := stun.AppendHeader(nil, stun.BindingRequest, stun.NewTransactionID())
		for _, tc := range []struct {
			name  string
			alloc bool
			frame []byte
		}{
			{"STUN", false, bind},
			{"ChannelData on an allocation", true, turn.AppendChannelData(nil, 0x4000, make([]byte, 16), true)},
		} {
			c, err := dialFrom(netip.MustParseAddr("127.0.0.1"), s.tcp)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.alloc {
				if err := newStream(c).allocate(key, peer); err != nil {
					t.Fatal(err)
				}
			}
			// One byte every 300 ms: each within the idle timeout, the
			// frame far beyond the message timeout.
			start := time.Now()
			sent := 0
			for _, b := range tc.frame[:len(tc.frame)-1] {
				if _, err := c.Write([]byte{b}); err != nil {
					break
				}
				sent++
				if closedByServer(c, 300*time.Millisecond) {
					break
				}
			}
			held := time.Since(start)
			t.Logf("%s: the server held a half-read frame for %v (%d of %d bytes sent)", tc.name, held.Round(100*time.Millisecond), sent, len(tc.frame))
			if sent == len(tc.frame)-1 && !closedByServer(c, 2*time.Second) {
				t.Errorf("%s: a frame trickled over %v is still being read", tc.name, held.Round(time.Second))
			}
		}
		if got := s.metric(t, "icebreaker_stun_tcp_message_timeouts_total"); got < 2 {
			t.Errorf("icebreaker_stun_tcp_message_timeouts_total = %v, want 2", got)
		}
	})

	// After one 401, connections that each hold a partial 65 KB
	// ChannelData frame made the server buffer it all. Now ChannelData is
	// taken only on a connection whose allocation has a channel; the
	// others are closed at once, and counted.
	t.Run("unauthenticated ChannelData", func(t *testing.T) {
		const n = 2000
		s := startHold(t, bin, "ICEBREAKER_TCP_CONNS_PER_IP=0")
		frame := partialChannelData()
		before := s.rss(t)
		conns := s.dialMany(t, n, (*stream).challenge)
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(frame) // the server may close first
		}
		refused := s.waitMetric(t, "icebreaker_stun_tcp_frames_refused_total", n)
		grew := s.settledRSS(t) - before
		t.Logf("%d connections with a partial 65 KB ChannelData frame after a 401: RSS %d MB -> %d MB (+%d MB), %v refused",
			n, before>>20, (before+grew)>>20, grew>>20, refused)
		if refused < n {
			t.Errorf("icebreaker_stun_tcp_frames_refused_total = %v, want %d", refused, n)
		}
		// Buffering the frames would cost n * 64 KB = 125 MB; the 2000
		// connections themselves, open at once, about 20 MB.
		if grew > 64<<20 {
			t.Errorf("RSS grew by %d MB", grew>>20)
		}
	})

	// Authenticated clients with a channel may send 65 KB frames, but
	// 3000 of them holding a partial one would pin 190 MB of buffers. Now
	// buffers beyond the first kilobyte come from a budget shared by the
	// connections; a connection that finds it spent is closed and counted.
	t.Run("buffer budget", func(t *testing.T) {
		const n = 3000
		s := startHold(t, bin, "ICEBREAKER_TCP_CONNS_PER_IP=0", "ICEBREAKER_TURN_QUOTAS_ALLOCATIONS_PER_USER=0",
			"ICEBREAKER_TCP_MESSAGE_TIMEOUT=1m")
		peer, key := holdPeer(t)
		conns := s.dialMany(t, n, func(st *stream) error { return st.allocate(key, peer) })
		before := s.rss(t)
		frame := partialChannelData()
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(frame)
		}
		// Wait until the server has read what it takes (the frames it
		// buffers, or the connections it closes): until RSS settles.
		grew := s.settledRSS(t) - before
		closed := s.metric(t, "icebreaker_stun_tcp_buffer_refused_total")
		t.Logf("%d allocations each holding a partial 65 KB ChannelData frame: RSS %d MB -> %d MB (+%d MB), %v connections closed for want of buffer",
			n, before>>20, (before+grew)>>20, grew>>20, closed)
		// Holding every frame would cost n * 64 KB = 188 MB.
		if grew > 100<<20 {
			t.Errorf("RSS grew by %d MB", grew>>20)
		}
	})
}
