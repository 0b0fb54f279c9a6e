package turnload

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// BuildFunc appends a request with transaction ID id, signed with a, to b.
type BuildFunc func(b []byte, id stun.TransactionID, a *Auth) []byte

// SetupRetransmit is the schedule of Do: short, because the server is on
// loopback, and bounded (about 3 s in all).
var SetupRetransmit = stunclient.Retransmit{RTO: 100 * time.Millisecond, Rc: 5, Rm: 16}

// Do runs one request over conn, a UDP socket connected to the server, and
// waits for its success response. It retransmits on SetupRetransmit's
// schedule, answers a 401 or 438 with credentials from kr (at most twice),
// and returns a *stun.Error for any other error response. It is meant for
// setting up a benchmark, not for measuring: every call may allocate.
// Datagrams that are not the awaited response are dropped.
func Do(conn *net.UDPConn, method stun.Method, build BuildFunc, a *Auth, kr *Keyring) (Reply, error) {
	buf := make([]byte, 1500)
	var out []byte
	var m stun.Message
	for challenges := 0; ; challenges++ {
		id := stun.NewTransactionID()
		out = build(out[:0], id, a)
		r, err := exchange(conn, out, &id, method, buf, &m)
		if err != nil {
			return Reply{}, err
		}
		if r.Success {
			return r, nil
		}
		if challenges < 2 && a.Learn(&r, kr) {
			continue
		}
		return r, &stun.Error{Code: r.Code, Reason: r.Reason}
	}
}

// exchange sends req and returns the first matching response, resending it
// on the SetupRetransmit schedule.
func exchange(conn *net.UDPConn, req []byte, id *stun.TransactionID, method stun.Method, buf []byte, m *stun.Message) (Reply, error) {
	for attempt := 0; ; attempt++ {
		if _, err := conn.Write(req); err != nil {
			return Reply{}, fmt.Errorf("send %v request: %w", method, err)
		}
		wait, last := SetupRetransmit.Wait(attempt)
		deadline := time.Now().Add(wait)
		if err := conn.SetReadDeadline(deadline); err != nil {
			return Reply{}, err
		}
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return Reply{}, fmt.Errorf("read %v response: %w", method, err)
			}
			b := buf[:n]
			if !IsReplyTo(b, id) || m.Parse(b) != nil {
				continue
			}
			r, err := ParseReply(m, method)
			if errors.Is(err, ErrNotResponse) {
				continue
			}
			return r, err
		}
		if last {
			return Reply{}, fmt.Errorf("%v: no response from %v after %d attempts", method, conn.RemoteAddr(), attempt+1)
		}
	}
}
