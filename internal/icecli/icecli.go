// Package icecli is the peer-to-peer protocol of `icebreaker ice offer|answer`
// (cmd/icebreaker), shared with its pion/ice twin in test/interop so that
// one of each can connect to the other: the token line each side prints
// and reads (ICE credentials, RFC 8445, Section 5.3, and candidates in the
// a=candidate grammar of RFC 8839, Section 5.1), the ping exchange over the
// selected pair, and the JSON summary. It knows no ICE library: candidates
// travel as strings, and each side parses them with its own.
package icecli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// TokenPrefix starts a token: it is followed by the unpadded base64url
// encoding of a Token in JSON. The version is in the prefix so a later
// format can be told apart.
const TokenPrefix = "ib1:"

// Token is what one side tells the other: its role ("offer", the
// controlling agent, or "answer"), its ICE credentials and its candidates.
type Token struct {
	Role       string   `json:"r"`
	Ufrag      string   `json:"u"`
	Pwd        string   `json:"p"`
	Candidates []string `json:"c"`
}

// ErrBadToken is wrapped by every error of DecodeToken.
var ErrBadToken = errors.New("the peer's token is not an icebreaker ICE token")

// EncodeToken returns the token line, without its newline.
func EncodeToken(t Token) string {
	b, _ := json.Marshal(t) // strings only: cannot fail
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeToken parses a token line (surrounding space allowed). It checks
// the role, that there are credentials and at least one candidate; the
// caller parses the candidates.
func DecodeToken(line string) (Token, error) {
	var t Token
	line = strings.TrimSpace(line)
	rest, ok := strings.CutPrefix(line, TokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w (it should start with %q)", ErrBadToken, TokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest, "="))
	if err != nil {
		return t, fmt.Errorf("%w (bad base64: %v; was it copied whole?)", ErrBadToken, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("%w (bad content: %v)", ErrBadToken, err)
	}
	switch {
	case t.Role != "offer" && t.Role != "answer":
		return t, fmt.Errorf("%w (role %q)", ErrBadToken, t.Role)
	case t.Ufrag == "" || t.Pwd == "":
		return t, fmt.Errorf("%w (no ICE credentials)", ErrBadToken)
	case len(t.Candidates) == 0:
		return t, fmt.Errorf("%w (no candidates)", ErrBadToken)
	}
	return t, nil
}

// Exchange prints tok as one line on w, reads the peer's token from r
// (waiting until ctx ends) and checks it: well formed, and of the other
// role.
func Exchange(ctx context.Context, w io.Writer, r io.Reader, tok Token) (Token, error) {
	if _, err := fmt.Fprintln(w, EncodeToken(tok)); err != nil {
		return Token{}, fmt.Errorf("writing the token: %w", err)
	}
	line, err := ReadToken(ctx, r)
	if err != nil {
		return Token{}, err
	}
	peer, err := DecodeToken(line)
	if err != nil {
		return peer, err
	}
	if peer.Role == tok.Role {
		return peer, fmt.Errorf("the peer's token is also an %s: run 'ice offer' on one side and 'ice answer' on the other", tok.Role)
	}
	return peer, nil
}

// Cand is a candidate in the JSON summary.
type Cand struct {
	Type string `json:"type"`
	Addr string `json:"addr"`
}

// Pair is a selected pair in the JSON summary.
type Pair struct {
	Local  Cand `json:"local"`
	Remote Cand `json:"remote"`
}

// Failure is a STUN or TURN server that gave no candidate while
// gathering: a warning line, and an entry of the JSON summary.
type Failure struct {
	URI   string `json:"uri"`            // stun:HOST:PORT, turn:HOST:PORT?transport=udp, ...
	Op    string `json:"op"`             // what failed: "binding" (STUN) or "allocate" (TURN)
	Base  string `json:"base,omitempty"` // the local address a Binding went from
	Error string `json:"error"`
}

// FailureLine returns f as one line of text, for a warning.
func FailureLine(f Failure) string {
	what := map[string]string{"binding": "STUN Binding", "allocate": "TURN allocation"}[f.Op]
	if what == "" {
		what = f.Op
	}
	if f.Base != "" {
		what += " from " + f.Base
	}
	return f.URI + ": " + what + " failed: " + f.Error
}

// Summary is the --json line printed after the pings.
type Summary struct {
	Role   string `json:"role"`
	Local  Cand   `json:"local"`
	Remote Cand   `json:"remote"`
	// ConnectMS runs from reading the peer's token to connected.
	ConnectMS float64 `json:"connect_ms"`
	// Final is the selected pair after the pings when the controlling
	// agent moved to another one meanwhile (off a relay, say).
	Final            *Pair     `json:"final,omitempty"`
	Pings            int       `json:"pings"`
	Lost             int       `json:"lost"`
	RTTms            []float64 `json:"rtt_ms"`
	LocalCandidates  []string  `json:"local_candidates"`
	RemoteCandidates []string  `json:"remote_candidates"`
	// GatherFailures are the servers that gave this side no candidate.
	GatherFailures []Failure `json:"gather_failures,omitempty"`
	// LocalOrigin is how the local candidate of the pair was found
	// (ice.Origin: "host", "stun", "turn", "portmap"), empty when unknown.
	LocalOrigin string `json:"local_origin,omitempty"`
	// PortMapped are the external addresses of the port mappings on the
	// router (each a srflx candidate, or equal to a STUN one).
	PortMapped []string `json:"portmapped,omitempty"`
}

// ParsePrefixOrIP parses the value of --ip: a prefix ("10.0.0.0/8") or
// one address ("10.1.2.3", an IPv4-mapped one unmapped, a zone dropped).
func ParsePrefixOrIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// PingAndReport runs the ping exchange on conn (count pings, a line per
// ping on log), fills the ping fields of sum and, with asJSON, prints it
// as one line on out. final, when not nil, is asked after the pings for
// the selected pair if the agent moved to another one (nil if not); the
// move is logged and reported as sum.Final. It fails when no ping was
// answered.
func PingAndReport(ctx context.Context, conn net.Conn, count int, sum *Summary, asJSON bool, out, log io.Writer, final func() *Pair) error {
	p := &Pinger{Conn: conn, Count: count, Log: log}
	return p.Run(ctx, func(rtts []time.Duration, lost int) error {
		sum.Pings, sum.Lost = count, lost
		sum.RTTms = []float64{}
		for _, r := range rtts {
			sum.RTTms = append(sum.RTTms, MS(r))
		}
		PrintRTTs(log, rtts, count, lost)
		if final != nil {
			if f := final(); f != nil {
				fmt.Fprintf(log, "the selected pair changed to: local %s %s <-> remote %s %s\n",
					f.Local.Type, f.Local.Addr, f.Remote.Type, f.Remote.Addr)
				sum.Final = f
			}
		}
		if len(rtts) == 0 {
			return fmt.Errorf("no ping over the selected pair was answered (%d sent)", count)
		}
		if asJSON {
			b, _ := json.Marshal(sum)
			if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
				return fmt.Errorf("writing the summary: %w", err)
			}
		}
		return nil
	})
}

// MS returns d in milliseconds, to the microsecond.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ReadToken reads the peer's token line from r. The read runs on its own goroutine
// so that ctx can end the wait; that goroutine ends when the line arrives
// or r is closed (for os.Stdin, when the process exits).
func ReadToken(ctx context.Context, r io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && !errors.Is(res.err, io.EOF) {
			return "", fmt.Errorf("reading the peer's token: %w", res.err)
		}
		if strings.TrimSpace(res.line) == "" {
			return "", errors.New("no token on standard input: paste the peer's token as one line")
		}
		return res.line, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the peer's token: %w", ctx.Err())
	}
}

// PrintRTTs prints the summary line of the pings: how many were sent and
// lost, and the minimum, average and maximum round-trip time.
func PrintRTTs(w io.Writer, rtts []time.Duration, sent, lost int) {
	if len(rtts) == 0 {
		fmt.Fprintf(w, "%d pings sent, none answered\n", sent)
		return
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, r := range rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	fmt.Fprintf(w, "%d pings, %d lost, rtt min/avg/max %.3f/%.3f/%.3f ms\n",
		sent, lost, MS(lo), MS(sum/time.Duration(len(rtts))), MS(hi))
}

// The ping exchange over the selected pair. Both sides send count pings
// and echo the peer's; each datagram is text, so it never starts with a
// byte 0-3 (RFC 7983):
//
//	"ib ping SEQ TRY"  a ping; TRY counts its retransmissions
//	"ib pong SEQ TRY"  the echo of that ping
//	"ib fin"           this side has all its answers (or gave up)
//	"ib fin got"       the same, and it has the peer's fin
//
// A side that has finished sends fin every finEvery until it has the
// peer's, and gives up waiting for it after finLinger. With both fins it
// answers every plain fin with "fin got" and leaves when finQuiet passed
// without one, so that a peer that missed its fin gets another (like TCP's
// TIME-WAIT, RFC 9293, Section 3.6.1).
const (
	pingWait  = time.Second // before a ping is sent again
	pingTries = 3           // sends of one ping before it counts as lost
	finEvery  = 200 * time.Millisecond
	finLinger = 5 * time.Second
	finQuiet  = finEvery * 3 / 2
)

// Pinger runs the exchange on Conn; it owns no goroutine. Count pings
// are sent (1 or more); Log receives one line per ping and per give-up;
// Wait is how long before a ping is sent again, 0 meaning a second.
type Pinger struct {
	Conn  net.Conn
	Count int
	Log   io.Writer
	Wait  time.Duration
}

// Run exchanges the pings. done is called once, when this side has its
// answers and before it says fin, so that its output is complete before
// the peer can leave; an error from done ends the exchange.
func (p *Pinger) Run(ctx context.Context, done func(rtts []time.Duration, lost int) error) error {
	var (
		rtts     []time.Duration
		lost     int
		seq, try = 1, 0
		sentAt   time.Time // of the outstanding ping's latest try
		finished bool
		peerFin  bool
		nextFin  time.Time
		giveUp   time.Time
		quiet    time.Time // with both fins: leave then
		buf      = make([]byte, 1500)
		wait     = p.Wait
	)
	if wait == 0 {
		wait = pingWait
	}
	send := func(s string) {
		p.Conn.Write([]byte(s)) // a lost datagram is retried or counted
	}
	ping := func(now time.Time) {
		try++
		sentAt = now
		send(fmt.Sprintf("ib ping %d %d", seq, try))
	}
	finish := func(now time.Time) error {
		finished = true
		if err := done(rtts, lost); err != nil {
			return err
		}
		send("ib fin")
		nextFin, giveUp, quiet = now.Add(finEvery), now.Add(finLinger), now.Add(finQuiet)
		return nil
	}
	ping(time.Now())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		switch {
		case finished && peerFin && !now.Before(quiet):
			return nil
		case finished && peerFin:
		case finished && !now.Before(giveUp):
			fmt.Fprintln(p.Log, "the peer did not confirm the end of the pings; leaving")
			return nil
		case finished && !now.Before(nextFin):
			send("ib fin")
			nextFin = now.Add(finEvery)
		case !finished && !now.Before(sentAt.Add(wait)):
			if try < pingTries {
				ping(now)
				break
			}
			fmt.Fprintf(p.Log, "ping %d: no answer\n", seq)
			lost++
			if seq++; seq > p.Count {
				if err := finish(now); err != nil {
					return err
				}
				break
			}
			try = 0
			ping(now)
		}
		wake := sentAt.Add(wait)
		switch {
		case finished && peerFin:
			wake = quiet
		case finished:
			wake = nextFin
			if giveUp.Before(wake) {
				wake = giveUp
			}
		}
		p.Conn.SetReadDeadline(wake)
		n, err := p.Conn.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); errors.Is(err, os.ErrDeadlineExceeded) || (ok && ne.Timeout()) {
				continue // pion's Conn times out with an error of its own
			}
			return fmt.Errorf("reading from the selected pair: %w", err)
		}
		f := strings.Fields(string(buf[:n]))
		switch {
		case len(f) == 3 && f[0] == "ib" && f[1] == "fin" && f[2] == "got":
			peerFin = true
		case len(f) == 2 && f[0] == "ib" && f[1] == "fin":
			peerFin = true
			if finished {
				send("ib fin got") // the peer has not got ours yet
				quiet = time.Now().Add(finQuiet)
			}
		case len(f) == 4 && f[0] == "ib" && f[1] == "ping":
			send("ib pong " + f[2] + " " + f[3])
		case len(f) == 4 && f[0] == "ib" && f[1] == "pong" && !finished:
			if f[2] != strconv.Itoa(seq) || f[3] != strconv.Itoa(try) {
				continue // a late answer to an earlier try
			}
			rtt := time.Since(sentAt)
			rtts = append(rtts, rtt)
			fmt.Fprintf(p.Log, "ping %d: %.3f ms\n", seq, MS(rtt))
			if seq++; seq > p.Count {
				if err := finish(time.Now()); err != nil {
					return err
				}
				continue
			}
			try = 0
			ping(time.Now())
		}
	}
}
