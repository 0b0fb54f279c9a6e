package main

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
)

// churnWorkers is how many requests the churn soak has in flight.
const churnWorkers = 64

// churnRound is one round of the soak: every client allocated (with a
// permission and a channel), then every allocation deleted.
type churnRound struct {
	made, deleted, failed int64
	peak, trough          procSample // after the allocating, after the deleting
}

// churn soaks the server's lifecycle paths: clients 5-tuples, each from
// its own loopback address (127.4.x.y, so that no per-address limit
// applies to the crowd), allocate with a permission and a channel each,
// then all delete, in rounds until d has passed. The server's RSS,
// descriptors and threads after each round's deletions should stay flat.
// The peers are loopback addresses (127.3.x.y), to which permissions and
// channel bindings send nothing.
func churn(t target, clients int, d time.Duration, pid int) ([]churnRound, error) {
	cs := make([]*client, 0, clients)
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for i := range clients {
		c, err := t.dialFrom(netip.AddrFrom4([4]byte{127, 4, byte(i >> 8), byte(i)}))
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		cs = append(cs, c)
	}
	var rounds []churnRound
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		var r churnRound
		r.made, r.failed = each(cs, func(i int, c *client) error {
			peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 3, byte(i >> 8), byte(i)}), 9)
			return steps(c, allocSteps(peer)...)
		})
		r.peak = sample(pid)
		var failed int64
		r.deleted, failed = each(cs, func(_ int, c *client) error {
			return steps(c, step{stun.MethodRefresh, turnload.AppendDelete})
		})
		r.failed += failed
		runtime.GC() // the attacker's garbage is not the server's
		r.trough = sample(pid)
		rounds = append(rounds, r)
	}
	return rounds, nil
}

type step struct {
	method stun.Method
	build  turnload.BuildFunc
}

func allocSteps(peer netip.AddrPort) []step {
	return []step{
		{stun.MethodAllocate, turnload.AppendAllocate},
		{stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendCreatePermission(b, id, peer, a)
		}},
		{stun.MethodChannelBind, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendChannelBind(b, id, 0x4000, peer, a)
		}},
	}
}

// steps runs requests in order until one fails.
func steps(c *client, ss ...step) error {
	for _, s := range ss {
		if _, code, err := c.do(s.method, s.build); err != nil || code != 0 {
			return fmt.Errorf("%v: code %d: %v", s.method, code, err)
		}
	}
	return nil
}

// each runs f for every client on churnWorkers goroutines and counts the
// successes and failures.
func each(cs []*client, f func(int, *client) error) (ok, failed int64) {
	var next, okN, failN atomic.Int64
	var wg sync.WaitGroup
	for range churnWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cs) {
					return
				}
				if f(i, cs[i]) != nil {
					failN.Add(1)
				} else {
					okN.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load()
}

// dialFrom is dial with the client's source address: a loopback address
// of the server's family.
func (t target) dialFrom(local netip.Addr) (*client, error) {
	if !t.server.Addr().IsLoopback() || !local.IsLoopback() {
		return nil, fmt.Errorf("refusing %v -> %v: loopback only", local, t.server)
	}
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(t.server))
	if err != nil {
		return nil, err
	}
	return &client{conn: c, kr: turnload.Keyring{Creds: t.creds}}, nil
}
