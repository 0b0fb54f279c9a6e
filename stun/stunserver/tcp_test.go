package stunserver

import (
	"encoding/binary"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

func dialTCP(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", endpoint(t, s, "tcp", RolePrimary).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTCPBadPeerLosesOnlyItsConnection: a peer that sends garbage or
// announces a message over MaxMessageSize is disconnected; a peer on
// another connection keeps being served.
func TestTCPBadPeerLosesOnlyItsConnection(t *testing.T) {
	s := startServer(t, Config{TCP: loop4})
	good := dialTCP(t, s)
	id := stun.NewTransactionID()
	checkSuccess(t, streamExchange(t, good, request(stun.BindingRequest, id, true)), id, localAddr(good))

	huge := stun.AppendHeader(nil, stun.BindingRequest, stun.NewTransactionID())
	binary.BigEndian.PutUint16(huge[2:4], 0xfffc) // announces 65 KiB
	badLength := stun.AppendHeader(nil, stun.BindingRequest, stun.NewTransactionID())
	binary.BigEndian.PutUint16(badLength[2:4], 6) // not a multiple of 4
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"huge length", huge},
		{"length not a multiple of 4", badLength},
		{"garbage after a good request", append(request(stun.BindingRequest, stun.NewTransactionID(), true), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().Malformed
			bad := dialTCP(t, s)
			if _, err := bad.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if stun.Is(tc.bytes[:min(len(tc.bytes), 32)]) || tc.name == "garbage after a good request" {
				readStream(t, bad) // the good request is still answered
			}
			waitClosed(t, bad)
			if got := s.Stats().Malformed; got != before+1 {
				t.Errorf("Malformed went from %d to %d", before, got)
			}
			id := stun.NewTransactionID()
			checkSuccess(t, streamExchange(t, good, request(stun.BindingRequest, id, true)), id, localAddr(good))
		})
	}

	t.Run("well framed but malformed message keeps the connection", func(t *testing.T) {
		c := dialTCP(t, s)
		bad := request(stun.BindingRequest, stun.NewTransactionID(), true)
		bad[len(bad)-1] ^= 1 // wrong FINGERPRINT
		if _, err := c.Write(bad); err != nil {
			t.Fatal(err)
		}
		id := stun.NewTransactionID()
		checkSuccess(t, streamExchange(t, c, request(stun.BindingRequest, id, true)), id, localAddr(c))
	})
}

// TestTCPIdleTimeout checks on a real socket that an idle connection is
// eventually closed, without any timing threshold.
func TestTCPIdleTimeout(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, TCPIdleTimeout: 50 * time.Millisecond})
	c := dialTCP(t, s)
	waitClosed(t, c)
	if st := s.Stats(); st.TCPTimeouts != 1 {
		t.Errorf("TCPTimeouts = %d, want 1", st.TCPTimeouts)
	}
}

// TestTCPIdleTimeoutClock checks the idle timeout exactly, on a fake clock:
// the connection (a net.Pipe) lives exactly as long as the timeout after
// the last byte, and activity postpones it.
func TestTCPIdleTimeoutClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The server is never served: only the connection's goroutine runs.
		s, err := Listen(Config{TCP: loop4, TCPIdleTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cl := serveOnPipe(t, s)

		start := time.Now()
		time.Sleep(20 * time.Second) // fake time: activity before the timeout
		id := stun.NewTransactionID()
		go cl.Write(request(stun.BindingRequest, id, true))
		readStream(t, cl)
		lastByte := time.Now()
		if lastByte.Sub(start) != 20*time.Second {
			t.Fatalf("fake clock moved %v", lastByte.Sub(start))
		}
		var b [1]byte
		cl.SetReadDeadline(time.Time{})
		if _, err := cl.Read(b[:]); err == nil {
			t.Fatal("read data after the response")
		}
		if idle := time.Since(lastByte); idle != 30*time.Second {
			t.Errorf("closed after %v idle, want exactly 30s", idle)
		}
		synctest.Wait()
		if st := s.Stats(); st.TCPTimeouts != 1 || st.TCPConns != 0 {
			t.Errorf("TCPTimeouts = %d, TCPConns = %d; want 1 and 0", st.TCPTimeouts, st.TCPConns)
		}
	})
}

func TestMaxTCPConns(t *testing.T) {
	s := startServer(t, Config{TCP: loop4, MaxTCPConns: 1})
	first := dialTCP(t, s)
	id := stun.NewTransactionID()
	checkSuccess(t, streamExchange(t, first, request(stun.BindingRequest, id, true)), id, localAddr(first))
	second := dialTCP(t, s)
	waitClosed(t, second)
	if st := s.Stats(); st.TCPRejected != 1 || st.TCPConns != 1 {
		t.Errorf("TCPRejected = %d, TCPConns = %d; want 1 and 1", st.TCPRejected, st.TCPConns)
	}
	// The first connection is unaffected; once it closes there is room.
	id = stun.NewTransactionID()
	checkSuccess(t, streamExchange(t, first, request(stun.BindingRequest, id, true)), id, localAddr(first))
	first.Close()
	deadline := time.Now().Add(ioWait)
	for s.Stats().TCPConns != 0 {
		if time.Now().After(deadline) {
			t.Fatal("closed connection still counted")
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
	third := dialTCP(t, s)
	id = stun.NewTransactionID()
	checkSuccess(t, streamExchange(t, third, request(stun.BindingRequest, id, true)), id, localAddr(third))
}
