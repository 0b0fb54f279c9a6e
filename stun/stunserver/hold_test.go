package stunserver

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
	"github.com/icebreaker-net/icebreaker/stun"
)

// The limits against connections that hold the server's resources:
// Config.PerIP, MessageTimeout, MaxReadBuffers and an OtherHandler that
// refuses frames. The same attacks against the whole daemon are in
// cmd/icebreaker (TestServeTCPHolding), with memory measured.

// serveOnPipe serves one end of a net.Pipe as a TCP connection of s, whose
// goroutines are never started: for tests on synctest's fake clock.
func serveOnPipe(t *testing.T, s *Server) net.Conn {
	t.Helper()
	cl, sv := net.Pipe()
	t.Cleanup(func() { cl.Close() })
	if !s.track(sv) {
		t.Fatal("track refused the connection")
	}
	s.wg.Add(1)
	go s.serveConn(sv, tTCP)
	return cl
}

// TestTCPMessageTimeoutClock: a message must arrive whole within
// MessageTimeout of its first byte, however often the peer sends a byte
// and also on a connection a Handler keeps open; between messages only
// the idle timeout counts (none with KeepOpen).
func TestTCPMessageTimeoutClock(t *testing.T) {
	keep := stun.Type{Method: stun.MethodAllocate, Class: stun.ClassRequest}
	h := HandlerFunc(func(out []byte, req *Request) []byte {
		req.Conn.KeepOpen(true)
		return stun.AppendHeader(out, stun.Type{Method: req.Msg.Type.Method, Class: stun.ClassSuccess}, req.Msg.TransactionID)
	})
	for _, keepOpen := range []bool{false, true} {
		name := "idle"
		if keepOpen {
			name = "kept open"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := Listen(Config{TCP: loop4, TCPIdleTimeout: 30 * time.Second, MessageTimeout: 5 * time.Second, Handler: h})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				cl := serveOnPipe(t, s)
				if keepOpen {
					id := stun.NewTransactionID()
					go cl.Write(request(keep, id, false))
					readStream(t, cl)
					time.Sleep(time.Minute) // past the idle timeout: kept open
				}
				req := request(stun.BindingRequest, stun.NewTransactionID(), true)
				start := time.Now()
				var closedAfter time.Duration
				for _, b := range req {
					if _, err := cl.Write([]byte{b}); err != nil {
						closedAfter = time.Since(start)
						break
					}
					time.Sleep(2 * time.Second) // each byte well within the idle timeout
				}
				if closedAfter == 0 {
					t.Fatal("a message trickled over a minute was read whole")
				}
				// The byte sent at 4 s is read; the one at 6 s finds the
				// connection closed at 5 s.
				if closedAfter != 6*time.Second {
					t.Errorf("the write at %v failed, want the one at 6s", closedAfter)
				}
				synctest.Wait()
				if st := s.Stats(); st.TCPMessageTimeouts != 1 || st.TCPTimeouts != 0 || st.TCPConns != 0 {
					t.Errorf("TCPMessageTimeouts %d, TCPTimeouts %d, TCPConns %d; want 1, 0, 0", st.TCPMessageTimeouts, st.TCPTimeouts, st.TCPConns)
				}
			})
		})
	}
}

// TestPerIPConns: with a shared Limiter, one address holds at most
// MaxConns connections on the TCP and TLS listeners together; further
// ones are closed at once and counted, and a closed one frees its place.
func TestPerIPConns(t *testing.T) {
	lim, err := iplimit.New(iplimit.Config{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	server, client := selfSignedTLS(t)
	s := startServer(t, Config{TCP: loop4, TLS: loop4, TLSConfig: server, PerIP: lim})
	binding := func(c net.Conn) {
		t.Helper()
		id := stun.NewTransactionID()
		checkSuccess(t, streamExchange(t, c, request(stun.BindingRequest, id, true)), id, localAddr(c))
	}
	first := dialTCP(t, s)
	binding(first)
	tc, err := tls.Dial("tcp", endpoint(t, s, "tls", RolePrimary).String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	binding(tc)
	third := dialTCP(t, s)
	waitClosed(t, third)
	if st := s.Stats(); st.TCPPerIPRejected != 1 || st.TCPConns != 2 {
		t.Errorf("TCPPerIPRejected %d, TCPConns %d; want 1 and 2", st.TCPPerIPRejected, st.TCPConns)
	}
	first.Close()
	deadline := time.Now().Add(ioWait)
	for lim.Stats().Keys != 1 || s.Stats().TCPConns != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection still counts")
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
	binding(dialTCP(t, s))
}

// TestTLSHandshakesPerIP: past its Rate, an address's TLS connections are
// closed before the handshake and counted.
func TestTLSHandshakesPerIP(t *testing.T) {
	now := time.Unix(1000, 0)
	lim, err := iplimit.New(iplimit.Config{Rate: 1, Burst: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	server, client := selfSignedTLS(t)
	s := startServer(t, Config{TLS: loop4, TLSConfig: server, PerIP: lim})
	addr := endpoint(t, s, "tls", RolePrimary).String()
	for i := range 3 {
		c, err := tls.Dial("tcp", addr, client)
		if i < 2 {
			if err != nil {
				t.Fatalf("handshake %d: %v", i, err)
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Fatal("a third handshake in the same second went through")
		}
	}
	if st := s.Stats(); st.TLSHandshakesRefused != 1 || st.TLSHandshakeErrors != 0 {
		t.Errorf("TLSHandshakesRefused %d, TLSHandshakeErrors %d; want 1 and 0", st.TLSHandshakesRefused, st.TLSHandshakeErrors)
	}
}

// refuser is an OtherHandler that refuses every frame after the first
// byte, as a TURN server refuses ChannelData on a connection without a
// channel.
type refuser struct{ *recorder }

func (refuser) FrameOther(Conn, []byte) (int, int, error) { return 0, 0, errors.New("no channel") }

// TestOtherFrameRefused: a frame the OtherHandler refuses closes the
// connection before it is read, counted apart from malformed input.
func TestOtherFrameRefused(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, Handler: refuser{newRecorder()}})
	c := dialTCP(t, s)
	streamExchange(t, c, request(allocate, stun.NewTransactionID(), true)) // the connection now carries TURN
	if _, err := c.Write([]byte{0x40, 0x00, 0xff}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c)
	if st := s.Stats(); st.TCPFramesRefused != 1 || st.Malformed != 0 || st.ChannelData != 0 {
		t.Errorf("TCPFramesRefused %d, Malformed %d, ChannelData %d; want 1, 0, 0", st.TCPFramesRefused, st.Malformed, st.ChannelData)
	}
}

// TestReadBufferBudget: a message longer than a connection's own buffer
// needs one from the budget; a connection that finds it spent is closed
// and counted, and the buffer goes back once its message is handled.
func TestReadBufferBudget(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, MaxReadBuffers: MaxMessageSize})
	id := stun.NewTransactionID()
	long := request(stun.BindingRequest, id, true, attr{0x8050, make([]byte, 2000)}) // comprehension-optional: ignored
	a, b := dialTCP(t, s), dialTCP(t, s)
	if _, err := a.Write(long[:1500]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ioWait)
	for s.Stats().TCPBufferedBytes != MaxMessageSize {
		if time.Now().After(deadline) {
			t.Fatalf("TCPBufferedBytes = %d, want %d", s.Stats().TCPBufferedBytes, MaxMessageSize)
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
	if _, err := b.Write(long[:1500]); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, b)
	checkSuccess(t, streamExchange(t, a, long[1500:]), id, localAddr(a))
	if st := s.Stats(); st.TCPBufferRefused != 1 || st.TCPBufferedBytes != 0 {
		t.Errorf("TCPBufferRefused %d, TCPBufferedBytes %d; want 1 and 0", st.TCPBufferRefused, st.TCPBufferedBytes)
	}
}
