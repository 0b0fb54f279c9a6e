package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/icebreaker-net/icebreaker/stun"
)

// snapshot is the sum of every worker's counters at one instant.
type snapshot struct {
	sent, received, lost, stray, sendErrors, recvErrors uint64
}

func take(cs []counters) snapshot {
	var s snapshot
	for i := range cs {
		s.sent += cs[i].sent.Load()
		s.received += cs[i].received.Load()
		s.lost += cs[i].lost.Load()
		s.stray += cs[i].stray.Load()
		s.sendErrors += cs[i].sendErrors.Load()
		s.recvErrors += cs[i].recvErrors.Load()
	}
	return s
}

// run opens the sockets, waits for the server, loads it for warmup plus
// duration and returns what it measured after the warmup. Every goroutine
// it starts has exited when it returns.
func run(ctx context.Context, cfg config) (result, error) {
	target := cfg.target
	raddr := net.UDPAddrFromAddrPort(target)
	conns := make([]*net.UDPConn, 0, cfg.sockets)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range cfg.sockets {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return result{}, fmt.Errorf("open socket: %w", err)
		}
		conns = append(conns, c)
		// Best effort: a larger buffer absorbs bursts of answers.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
	}
	if cfg.wait > 0 {
		if err := waitReady(ctx, conns[0], cfg.wait); err != nil {
			return result{}, err
		}
	}

	var (
		stop    atomic.Bool
		budget  atomic.Int64
		spentMu sync.Once
		spentCh = make(chan struct{})
		cs      = make([]counters, cfg.sockets)
		wg      sync.WaitGroup
		sh      = shared{budget: &budget, stop: &stop}
	)
	budget.Store(cfg.maxRequests)
	sh.spent = func() { spentMu.Do(func() { close(spentCh) }) }
	for i, c := range conns {
		var pc batchConn = ipv4.NewPacketConn(c)
		if target.Addr().Is6() {
			pc = ipv6.NewPacketConn(c)
		}
		w := newWorker(c, pc, cfg.inflight, cfg.batch, cfg.timeout, sh, &cs[i])
		wg.Go(w.run)
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()

	res := result{Label: cfg.label, Target: target.String(), Sockets: cfg.sockets, Inflight: cfg.inflight}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-spentCh:
		case <-ctx.Done():
		}
		res.Truncated = true
		return false
	}
	if cfg.warmup > 0 {
		wait(cfg.warmup)
	}
	s0, t0 := take(cs), time.Now()
	if !res.Truncated {
		wait(cfg.duration)
	}
	s1, t1 := take(cs), time.Now()

	res.Seconds = t1.Sub(t0).Seconds()
	res.Sent = s1.sent - s0.sent
	res.Received = s1.received - s0.received
	res.Lost = s1.lost - s0.lost
	res.Stray = s1.stray - s0.stray
	res.SendErrors = s1.sendErrors - s0.sendErrors
	res.RecvErrors = s1.recvErrors - s0.recvErrors
	if res.Seconds > 0 {
		res.Rate = float64(res.Received) / res.Seconds
	}
	res.CPUSeconds = processCPU()
	return res, nil
}

// waitReady sends a Binding request every 50 ms until one is answered, so
// that a run does not start before the server listens.
func waitReady(ctx context.Context, c *net.UDPConn, d time.Duration) error {
	deadline := time.Now().Add(d)
	req := make([]byte, 0, requestSize)
	buf := make([]byte, recvBufSize)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := stun.NewTransactionID()
		req = stun.AppendFingerprint(stun.AppendHeader(req[:0], stun.BindingRequest, id))
		// A write fails with ECONNREFUSED while nothing listens; the
		// read below then waits out the interval.
		_, _ = c.Write(req)
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				// ECONNREFUSED: wait out the interval before retrying.
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
				break
			}
			b := buf[:n]
			if stun.Is(b) && [12]byte(b[8:20]) == id {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer from %s within %v", c.RemoteAddr(), d)
}
