package icecli

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{Role: "offer", Ufrag: "abcd", Pwd: "0123456789012345678901", Candidates: []string{"1 1 udp 1 127.0.0.1 9 typ host"}}
	got, err := DecodeToken("  " + EncodeToken(tok) + "\r\n")
	if err != nil || got.Role != tok.Role || got.Ufrag != tok.Ufrag || got.Pwd != tok.Pwd || len(got.Candidates) != 1 || got.Candidates[0] != tok.Candidates[0] {
		t.Fatalf("got %+v, %v; want %+v", got, err, tok)
	}
	for _, bad := range []string{"hello", TokenPrefix + "!!!", TokenPrefix + "e30", EncodeToken(Token{Role: "x", Ufrag: "a", Pwd: "b", Candidates: []string{"c"}}),
		EncodeToken(Token{Role: "offer", Ufrag: "a", Pwd: "b"}), EncodeToken(Token{Role: "offer", Candidates: []string{"c"}})} {
		if _, err := DecodeToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("DecodeToken(%q) = %v, want ErrBadToken", bad, err)
		}
	}
}

func TestReadToken(t *testing.T) {
	line, err := ReadToken(t.Context(), strings.NewReader("ib1:x\nrest"))
	if err != nil || line != "ib1:x\n" {
		t.Errorf("ReadToken = %q, %v", line, err)
	}
	if _, err := ReadToken(t.Context(), strings.NewReader("\n")); err == nil {
		t.Error("an empty line was accepted")
	}
}

// lossyConn drops the datagrams drop returns true for.
type lossyConn struct {
	net.Conn
	drop func(b []byte) bool
}

func (c *lossyConn) Write(b []byte) (int, error) {
	if c.drop(b) {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// udpPair returns two UDP sockets on loopback connected to each other.
func udpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp4", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, err = net.DialUDP("udp4", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestPingerLoss(t *testing.T) {
	a, b := udpPair(t)
	var mu sync.Mutex
	dropped := map[string]bool{}
	// Side a loses its first try of ping 2; side b loses its first pong
	// and its first fin.
	dropOnce := func(what string) func([]byte) bool {
		return func(p []byte) bool {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(string(p), what) && !dropped[what] {
				dropped[what] = true
				return true
			}
			return false
		}
	}
	type result struct {
		rtts int
		lost int
		err  error
		log  string
	}
	res := make([]result, 2)
	var wg sync.WaitGroup
	for i, c := range []net.Conn{
		&lossyConn{a, dropOnce("ib ping 2 1")},
		&lossyConn{b, func(p []byte) bool { return dropOnce("ib pong")(p) || dropOnce("ib fin")(p) }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var log bytes.Buffer
			p := &Pinger{Conn: c, Count: 3, Log: &log, Wait: 50 * time.Millisecond}
			res[i].err = p.Run(t.Context(), func(rtts []time.Duration, lost int) error {
				res[i].rtts, res[i].lost = len(rtts), lost
				return nil
			})
			res[i].log = log.String()
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.err != nil || r.rtts != 3 || r.lost != 0 {
			t.Errorf("side %d: %d rtts, %d lost, %v; want 3 and 0\n%s", i, r.rtts, r.lost, r.err, r.log)
		}
	}
	if len(dropped) != 3 {
		t.Errorf("dropped %v, want a ping, a pong and a fin", dropped)
	}
}

func TestPingerNoPeer(t *testing.T) {
	a, _ := udpPair(t) // b never answers
	var log bytes.Buffer
	p := &Pinger{Conn: a, Count: 2, Log: &log, Wait: 10 * time.Millisecond}
	var got []time.Duration
	lost := -1
	err := p.Run(t.Context(), func(rtts []time.Duration, l int) error {
		got, lost = rtts, l
		return errors.New("none answered")
	})
	if err == nil || len(got) != 0 || lost != 2 {
		t.Errorf("err %v, rtts %v, lost %d; want an error, none and 2", err, got, lost)
	}
	if !strings.Contains(log.String(), "ping 1: no answer\nping 2: no answer\n") {
		t.Errorf("log %q", log.String())
	}
}

func TestParsePrefixOrIP(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3": "10.1.2.3/32", "10.1.2.3/8": "10.0.0.0/8", "::ffff:127.0.0.1": "127.0.0.1/32",
		"fe80::1%eth0": "fe80::1/128", "::1": "::1/128",
	} {
		if p, err := ParsePrefixOrIP(in); err != nil || p.String() != want {
			t.Errorf("ParsePrefixOrIP(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.1.2", "10.0.0.0/33", "host.example"} {
		if _, err := ParsePrefixOrIP(bad); err == nil {
			t.Errorf("ParsePrefixOrIP(%q) accepted", bad)
		}
	}
}

func TestExchange(t *testing.T) {
	mine := Token{Role: "offer", Ufrag: "abcd", Pwd: "0123456789012345678901", Candidates: []string{"c1"}}
	peer := Token{Role: "answer", Ufrag: "efgh", Pwd: "abcdefghijklmnopqrstuv", Candidates: []string{"c2"}}
	var out bytes.Buffer
	got, err := Exchange(t.Context(), &out, strings.NewReader(EncodeToken(peer)+"\n"), mine)
	if err != nil || got.Ufrag != peer.Ufrag || out.String() != EncodeToken(mine)+"\n" {
		t.Fatalf("Exchange = %+v, %v; printed %q", got, err, out.String())
	}
	if _, err := Exchange(t.Context(), &out, strings.NewReader(EncodeToken(mine)+"\n"), mine); err == nil || !strings.Contains(err.Error(), "also an offer") {
		t.Errorf("same role: %v", err)
	}
}

func TestFailureLine(t *testing.T) {
	for _, tc := range []struct {
		f    Failure
		want string
	}{
		{Failure{URI: "stun:192.0.2.1:3478", Op: "binding", Base: "10.0.0.2:5000", Error: "timeout"},
			"stun:192.0.2.1:3478: STUN Binding from 10.0.0.2:5000 failed: timeout"},
		{Failure{URI: "turn:192.0.2.1:3478?transport=udp", Op: "allocate", Error: "401 Unauthorized"},
			"turn:192.0.2.1:3478?transport=udp: TURN allocation failed: 401 Unauthorized"},
		{Failure{URI: "x:y", Op: "other", Error: "e"}, "x:y: other failed: e"},
	} {
		if got := FailureLine(tc.f); got != tc.want {
			t.Errorf("FailureLine(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}
