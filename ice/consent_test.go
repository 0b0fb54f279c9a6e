package ice

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

// TestConsent keeps consent while the peer answers, for well past the
// consent timeout, then loses it once the peer is gone: Read and Write
// return ErrConsentLost in a *net.OpError. RFC 7675, Section 5.1.
func TestConsent(t *testing.T) {
	cfg := func() AgentConfig {
		return AgentConfig{Gather: loopbackOnly(), ConsentInterval: 20 * time.Millisecond, ConsentTimeout: 300 * time.Millisecond}
	}
	states := newStateLog()
	cfgA := cfg()
	cfgA.OnStateChange = states.record
	cfgA.DisconnectedAfter = 150 * time.Millisecond
	a, b, ca, cb := connectPair(t, cfgA, cfg())

	// 30 answered checks span at least 30 * 16 ms, more than the
	// timeout: consent was refreshed, not merely not yet expired.
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().ConsentResponses < 30 || b.Stats().ConsentResponses < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("stats A %+v, B %+v: consent checks not answered", a.Stats(), b.Stats())
		}
		time.Sleep(10 * time.Millisecond) // bounded poll of a counter
	}
	if _, err := ca.Write([]byte("alive")); err != nil {
		t.Fatalf("Write with consent: %v", err)
	}
	cb.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	if n, err := cb.Read(buf); err != nil || string(buf[:n]) != "alive" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if st := a.Stats(); st.Malformed != 0 || st.ConsentChecks < st.ConsentResponses {
		t.Fatalf("stats %+v", st)
	}

	b.Close()
	ca.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := ca.Read(buf)
	var oe *net.OpError
	if !errors.Is(err, ErrConsentLost) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read after the peer left: %v, want ErrConsentLost in a *net.OpError", err)
	}
	if _, err := ca.Write([]byte("gone")); !errors.Is(err, ErrConsentLost) {
		t.Fatalf("Write after consent lost: %v", err)
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	// Unanswered checks made A disconnected before consent was lost. (A
	// slow machine may also delay an answer past DisconnectedAfter while
	// B is alive: disconnected, connected pairs may come in between.)
	<-states.closed
	got := states.get()
	head := []ConnectionState{ConnectionChecking, ConnectionConnected}
	tail := []ConnectionState{ConnectionDisconnected, ConnectionFailed, ConnectionClosed}
	if len(got) < 5 || !slices.Equal(got[:2], head) || !slices.Equal(got[len(got)-3:], tail) {
		t.Errorf("states %v, want %v ... %v", got, head, tail)
	}
	if _, err := ca.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
}

// TestConsentDisabled: a negative ConsentInterval sends no consent check.
func TestConsentDisabled(t *testing.T) {
	a, _, ca, cb := connectPair(t, AgentConfig{Gather: loopbackOnly(), ConsentInterval: -1},
		AgentConfig{Gather: loopbackOnly()})
	if _, err := cb.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ca.Read(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.ConsentChecks != 0 {
		t.Fatalf("stats %+v: consent checks sent while disabled", st)
	}
}
