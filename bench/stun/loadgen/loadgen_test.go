package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun"
)

// The guard itself is tested in bench/internal/loopback; here, that the
// flag goes through it.
func TestLoopbackTarget(t *testing.T) {
	if c, err := parseArgs([]string{"-target", "[::ffff:127.0.0.1]:3478"}, io.Discard); err != nil || c.target.String() != "127.0.0.1:3478" {
		t.Errorf("got %v, %v", c.target, err)
	}
	if _, err := parseArgs([]string{"-target", "192.0.2.1:3478"}, io.Discard); !errors.Is(err, loopback.ErrNotLoopback) || !strings.Contains(err.Error(), "-target") {
		t.Errorf("non-loopback target: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	ok := []string{"-target", "127.0.0.1:3478"}
	for _, tc := range []struct {
		name  string
		extra []string
		good  bool
	}{
		{"defaults", nil, true},
		{"max duration", []string{"-duration", "60s"}, true},
		{"duration over cap", []string{"-duration", "61s"}, false},
		{"zero duration", []string{"-duration", "0"}, false},
		{"warmup over cap", []string{"-warmup", "11s"}, false},
		{"no sockets", []string{"-sockets", "0"}, false},
		{"too many sockets", []string{"-sockets", "65"}, false},
		{"no inflight", []string{"-inflight", "0"}, false},
		{"huge inflight", []string{"-inflight", "5000"}, false},
		{"zero max requests", []string{"-max-requests", "0"}, false},
		{"stray argument", []string{"extra"}, false},
		{"remote target", []string{"-target", "198.51.100.7:3478"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArgs(append(append([]string{}, ok...), tc.extra...), io.Discard)
			if (err == nil) != tc.good {
				t.Errorf("err = %v, want success %v", err, tc.good)
			}
		})
	}
}

// echoResponder answers every datagram on a loopback socket through fn
// until the socket is closed. It returns the socket's address and a
// function that closes it and waits for the goroutine.
func echoResponder(t testing.TB, fn func(req []byte) []byte) (netip.AddrPort, func()) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			if out := fn(buf[:n]); out != nil {
				_, _ = conn.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort(), func() {
		_ = conn.Close()
		<-done
	}
}

// bindingAnswer builds the success response to a Binding request, or nil.
func bindingAnswer(req []byte) []byte {
	var m stun.Message
	if m.Parse(req) != nil || m.Type != stun.BindingRequest {
		return nil
	}
	return stun.AppendFingerprint(stun.AppendHeader(nil, stun.BindingSuccess, m.TransactionID))
}

func testConfig(target netip.AddrPort) config {
	return config{
		target: target, sockets: 2, inflight: 8, batch: 4,
		duration: 150 * time.Millisecond, timeout: 50 * time.Millisecond,
		wait: 5 * time.Second, maxRequests: 1_000_000,
	}
}

func TestRun(t *testing.T) {
	before := runtime.NumGoroutine()
	addr, stop := echoResponder(t, bindingAnswer)
	defer stop()

	res, err := run(context.Background(), testConfig(addr))
	if err != nil {
		t.Fatal(err)
	}
	if res.Received == 0 || res.Sent == 0 {
		t.Errorf("nothing measured: %+v", res)
	}
	// Every answer counted belongs to a request sent in the window or in
	// flight when it opened.
	cfg := testConfig(addr)
	if limit := res.Sent + uint64(cfg.sockets*cfg.inflight); res.Received > limit {
		t.Errorf("received %d answers, more than the %d requests that could be answered", res.Received, limit)
	}
	stop()
	testutil.CheckGoroutines(t, before)
}

func TestRunCountsOnlyMatchingAnswers(t *testing.T) {
	before := runtime.NumGoroutine()
	var ready atomic.Bool
	addr, stop := echoResponder(t, func(req []byte) []byte {
		// Answer the readiness probe properly, then only with a wrong
		// transaction ID.
		out := bindingAnswer(req)
		if ready.Swap(true) && out != nil {
			out[19] ^= 0xff
		}
		return out
	})
	defer stop()

	cfg := testConfig(addr)
	cfg.duration = 500 * time.Millisecond // ten timeouts: some surely expire
	res, err := run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 0 || res.Stray == 0 || res.Lost == 0 {
		t.Errorf("got %+v, want no answer counted, stray answers and lost requests", res)
	}
	stop()
	testutil.CheckGoroutines(t, before)
}

func TestRunMaxRequests(t *testing.T) {
	addr, stop := echoResponder(t, bindingAnswer)
	defer stop()
	cfg := testConfig(addr)
	cfg.maxRequests = 10
	cfg.duration = 10 * time.Second
	res, err := run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Sent > 10 {
		t.Errorf("got %+v, want a truncated run of at most 10 requests", res)
	}
}

func TestRunNoServer(t *testing.T) {
	// A port that was just free: nothing answers there.
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testutil.FreePort(t)))
	cfg := testConfig(addr)
	cfg.wait = 200 * time.Millisecond
	if _, err := run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("run against nothing: %v, want a no-answer error", err)
	}
}

// TestReceive checks the matching rules on crafted datagrams.
func TestReceive(t *testing.T) {
	var stop atomic.Bool
	var budget atomic.Int64
	budget.Store(1 << 30)
	w := newWorker(nil, nil, 4, 8, time.Second, shared{budget: &budget, spent: func() {}, stop: &stop}, &counters{})
	now := time.Now()
	for i := range w.slots {
		w.arm(i, now)
	}
	old := w.slots[2].id
	w.arm(2, now) // slot 2's first request is now stale
	w.pending = w.pending[:0]

	answer := func(id stun.TransactionID, typ stun.Type) []byte {
		return stun.AppendFingerprint(stun.AppendHeader(nil, typ, id))
	}
	outOfRange := w.slots[0].id
	outOfRange[3] = 200
	pkts := [][]byte{
		answer(w.slots[0].id, stun.BindingSuccess), // matches
		answer(w.slots[1].id, stun.BindingSuccess), // matches
		answer(w.slots[1].id, stun.BindingSuccess), // duplicate: slot re-armed
		answer(old, stun.BindingSuccess),           // late
		answer(w.slots[3].id, stun.BindingError),   // wrong type
		answer(outOfRange, stun.BindingSuccess),    // no such slot
		[]byte("garbage"),
	}
	for i, p := range pkts {
		w.rmsgs[i].N = copy(w.rmsgs[i].Buffers[0], p)
	}
	w.receive(len(pkts), now)
	if w.received != 2 || w.stray != 5 {
		t.Errorf("received %d stray %d, want 2 and 5", w.received, w.stray)
	}
	if len(w.pending) != 2 || w.pending[0] != 0 || w.pending[1] != 1 {
		t.Errorf("pending %v, want slots 0 and 1 re-armed", w.pending)
	}

	w.expire(now.Add(2 * time.Second))
	if w.lost != 4 {
		t.Errorf("lost %d after every slot timed out, want 4", w.lost)
	}
}
