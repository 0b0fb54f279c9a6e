package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
)

// streamClient is a TURN client over TCP (RFC 6062 needs one).
type streamClient struct {
	conn net.Conn
	auth turnload.Auth
	kr   turnload.Keyring
	rbuf []byte
}

func (t target) dialTCP() (*streamClient, error) {
	if !t.tcpServer.Addr().IsLoopback() {
		return nil, fmt.Errorf("refusing to attack %v: loopback targets only", t.tcpServer)
	}
	c, err := net.DialTimeout("tcp", t.tcpServer.String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &streamClient{conn: c, kr: turnload.Keyring{Creds: t.creds}}, nil
}

func (c *streamClient) close() { c.conn.Close() }

// next returns the next STUN message of the stream, waiting until
// deadline.
func (c *streamClient) next(deadline time.Time) (*stun.Message, error) {
	c.conn.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for {
		if len(c.rbuf) >= stun.HeaderSize {
			n, err := stun.MessageLength(c.rbuf)
			if err != nil {
				return nil, err
			}
			if len(c.rbuf) >= n {
				var m stun.Message
				err := m.Parse(append([]byte(nil), c.rbuf[:n]...))
				c.rbuf = c.rbuf[n:]
				return &m, err
			}
		}
		k, err := c.conn.Read(buf)
		c.rbuf = append(c.rbuf, buf[:k]...)
		if err != nil {
			return nil, err
		}
	}
}

// do sends a request (answering 401 and 438) and returns the code of its
// final answer, 0 for success.
func (c *streamClient) do(method stun.Method, build turnload.BuildFunc) (int, error) {
	for range 3 {
		id := stun.NewTransactionID()
		if _, err := c.conn.Write(build(nil, id, &c.auth)); err != nil {
			return 0, err
		}
		for {
			m, err := c.next(time.Now().Add(5 * time.Second))
			if err != nil {
				return 0, err
			}
			if m.TransactionID != id {
				continue
			}
			r, err := turnload.ParseReply(m, method)
			if err != nil {
				return 0, err
			}
			if r.Success {
				return 0, nil
			}
			if c.auth.Learn(&r, &c.kr) {
				break
			}
			return r.Code, nil
		}
	}
	return 0, errors.New("challenged three times")
}

// connectFlood makes allocations TCP allocations and sends each a Connect
// to every peer (issue 13, item 2: peers that never answer, each holding a
// socket for 30 s). It returns the answers that came within a second
// (pending Connects get none) and whether a fresh client still gets a
// Binding answer over TCP afterwards: the listener still accepts.
func connectFlood(t target, allocations int, peers []netip.AddrPort) (got counts, sent int, fresh bool, err error) {
	got = counts{}
	var cs []*streamClient
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for range allocations {
		c, err := t.dialTCP()
		if err != nil {
			return got, sent, false, err
		}
		cs = append(cs, c)
		if code, err := c.do(stun.MethodAllocate, turnload.AppendAllocateTCP); err != nil || code != 0 {
			got[-code]++ // a refused allocation, negated to tell it apart
			continue
		}
		for _, p := range peers {
			id := stun.NewTransactionID()
			if _, err := c.conn.Write(turnload.AppendConnect(nil, id, p, &c.auth)); err != nil {
				return got, sent, false, err
			}
			sent++
		}
		for {
			m, err := c.next(time.Now().Add(time.Second))
			if err != nil {
				break // quiet: the rest are pending
			}
			if r, err := turnload.ParseReply(m, stun.MethodConnect); err == nil {
				got[r.Code]++
			}
		}
	}
	f, err := t.dialTCP()
	if err != nil {
		return got, sent, false, nil
	}
	defer f.close()
	id := stun.NewTransactionID()
	f.conn.Write(turnload.AppendBare(nil, id, stun.MethodBinding))
	m, err := f.next(time.Now().Add(5 * time.Second))
	fresh = err == nil && m.TransactionID == id
	if errors.Is(err, io.EOF) {
		fresh = false
	}
	return got, sent, fresh, nil
}
