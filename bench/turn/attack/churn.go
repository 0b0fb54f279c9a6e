package main

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/turnload"
	"github.com/icebreaker-net/icebreaker/stun"
)

// churnResult is what a churn soak did.
type churnResult struct {
	cycles, failed atomic.Int64
}

// churn runs clients 5-tuples, each in a loop until d has passed:
// Allocate, CreatePermission, ChannelBind, Refresh 0. With 10,000 clients
// that is 10,000 allocations created and deleted over and over, with a
// permission and a channel each: what a soak of the server's lifecycle
// paths (tables, timers, relay sockets, pollers) needs to show flat
// memory and goroutines at the end. The peers are loopback addresses
// (127.3.x.y), which permissions and channel bindings send nothing to.
func churn(t target, clients int, d time.Duration) (*churnResult, error) {
	res := &churnResult{}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := range clients {
		c, err := t.dial()
		if err != nil {
			wg.Wait()
			return res, fmt.Errorf("client %d: %w", i, err)
		}
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 3, byte(i >> 8), byte(i)}), 9)
		wg.Go(func() {
			defer c.close()
			for time.Now().Before(end) {
				if err := cycle(c, peer); err != nil {
					res.failed.Add(1)
					select {
					case errc <- err:
					default:
					}
					continue
				}
				res.cycles.Add(1)
			}
		})
	}
	wg.Wait()
	if res.cycles.Load() == 0 {
		select {
		case err := <-errc:
			return res, err
		default:
		}
	}
	return res, nil
}

// cycle is one allocation's life.
func cycle(c *client, peer netip.AddrPort) error {
	steps := []struct {
		method stun.Method
		build  turnload.BuildFunc
	}{
		{stun.MethodAllocate, turnload.AppendAllocate},
		{stun.MethodCreatePermission, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendCreatePermission(b, id, peer, a)
		}},
		{stun.MethodChannelBind, func(b []byte, id stun.TransactionID, a *turnload.Auth) []byte {
			return turnload.AppendChannelBind(b, id, 0x4000, peer, a)
		}},
		{stun.MethodRefresh, turnload.AppendDelete},
	}
	for _, s := range steps {
		if _, code, err := c.do(s.method, s.build); err != nil || code != 0 {
			return fmt.Errorf("%v: code %d: %v", s.method, code, err)
		}
	}
	return nil
}
