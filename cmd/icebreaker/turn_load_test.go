package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turnloadcmd"
)

func TestTurnLoadUsage(t *testing.T) {
	ok := []string{"load", "turn:127.0.0.1:9", "--user", "u", "--pass", "p"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no URI", []string{"load", "--user", "u", "--pass", "p"}},
		{"two URIs", append(ok, "turn:127.0.0.1:10")},
		{"stun URI", []string{"load", "stun:127.0.0.1", "--user", "u", "--pass", "p"}},
		{"user without pass", []string{"load", "turn:127.0.0.1", "--user", "u"}},
		{"secret and user", append(ok, "--secret", "s")},
		{"no allocations", append(ok, "--allocations", "0")},
		{"too many allocations", append(ok, "--allocations", "10001")},
		{"one allocation without peer", append(ok, "--allocations", "1")},
		{"zero concurrency", append(ok, "--concurrency", "0")},
		{"zero rate", append(ok, "--rate", "0")},
		{"negative rate", append(ok, "--rate", "-5")},
		{"NaN rate", append(ok, "--rate", "NaN")},
		{"rate too high", append(ok, "--rate", "2e6")},
		{"zero duration", append(ok, "--duration", "0s")},
		{"duration too long", append(ok, "--duration", "11m")},
		{"size too small", append(ok, "--size", "10")},
		{"size too big", append(ok, "--size", "100000")},
		{"bad mode", append(ok, "--mode", "dtls")},
		{"bad peer", append(ok, "--peer", "localhost")},
		{"peer without port", append(ok, "--peer", "127.0.0.1:0")},
		{"ca without turns", append(ok, "--ca", "x.pem")},
		{"insecure and ca", []string{"load", "turns:127.0.0.1", "--user", "u", "--pass", "p", "--insecure", "--ca", "x.pem"}},
		{"zero timeout", append(ok, "--timeout", "0s")},
		{"unknown flag", append(ok, "--bogus")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, errb := runTurnCmd(t, tc.args...); code != 2 {
				t.Errorf("turn %q: exit %d, want 2; stderr:\n%s", tc.args, code, errb)
			}
		})
	}
}

// runLoad runs `icebreaker turn load args... --json`, expects exit status
// 0, and returns the summary.
func runLoad(t *testing.T, args ...string) *turnloadcmd.Report {
	t.Helper()
	code, out, errb := runTurnCmd(t, append([]string{"load"}, append(args, "--json")...)...)
	if code != 0 {
		t.Fatalf("turn load %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errb)
	}
	rep := new(turnloadcmd.Report)
	if err := json.Unmarshal([]byte(out), rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	t.Logf("%s: %d allocations (%.0f/s), sent %d, received %d, latency %+v", args, rep.Allocations, rep.AllocPerSecond, rep.Sent, rep.Received, rep.Latency)
	return rep
}

// checkLossless checks that a run with n allocations in mode lost nothing
// and sent the way mode asks: ChannelData after one warm-up Send
// indication per allocation, or Send indications only.
func checkLossless(t *testing.T, rep *turnloadcmd.Report, n int, mode string) {
	t.Helper()
	if rep.Allocations != n || rep.AllocFailed != 0 || rep.ErrorCount != 0 || len(rep.Errors) != 0 || rep.Interrupted {
		t.Errorf("allocations %d (want %d), %d failed, %d errors %+v, interrupted %v", rep.Allocations, n, rep.AllocFailed, rep.ErrorCount, rep.Errors, rep.Interrupted)
	}
	if rep.Sent == 0 || rep.Received != rep.Sent || rep.Lost != 0 || rep.LossPercent != 0 || rep.Foreign != 0 {
		t.Errorf("sent %d, received %d, lost %d (%v%%), foreign %d: want all received", rep.Sent, rep.Received, rep.Lost, rep.LossPercent, rep.Foreign)
	}
	if l := rep.Latency; l == nil || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || l.Max <= 0 {
		t.Errorf("latency %+v", l)
	}
	s := rep.Relay
	switch mode {
	case "channel":
		if rep.ChannelsUnbound != 0 || s.SentChannelData != rep.Sent || s.SentIndications != uint64(n) {
			t.Errorf("channel mode: %d unbound, sent %d ChannelData and %d Send indications; want %d and %d",
				rep.ChannelsUnbound, s.SentChannelData, s.SentIndications, rep.Sent, n)
		}
	case "send":
		if s.SentChannelData != 0 || s.RecvChannelData != 0 || s.SentIndications != rep.Sent {
			t.Errorf("send mode: sent %d ChannelData and %d Send indications, received %d ChannelData; want 0, %d, 0",
				s.SentChannelData, s.SentIndications, s.RecvChannelData, rep.Sent)
		}
	}
}

func TestTurnLoadCoturn(t *testing.T) {
	srv := startTurnCoturn(t)
	uri := "turn:" + srv.String()
	for _, tc := range []struct{ name, uri, mode string }{
		{"udp channel", uri, "channel"},
		{"tcp send", uri + "?transport=tcp", "send"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runLoad(t, tc.uri, "--user", "u", "--pass", "p", "--allocations", "4", "--rate", "200",
				"--duration", "1s", "--mode", tc.mode)
			checkLossless(t, rep, 4, tc.mode)
		})
	}
}

// startEchoPeer starts a UDP echo server on loopback; onEcho, if not nil,
// is called with the number of datagrams echoed so far.
func startEchoPeer(t *testing.T, onEcho func(n int)) netip.AddrPort {
	t.Helper()
	return startEchoPeerEvery(t, 1, onEcho)
}

// startEchoPeerEvery is startEchoPeer echoing only every k-th datagram
// (the first, the k+1-th, ...), as a lossy path would.
func startEchoPeerEvery(t *testing.T, k int, onEcho func(n int)) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for n, i := 1, 0; ; i++ {
			m, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if i%k != 0 {
				continue
			}
			c.WriteToUDPAddrPort(buf[:m], from)
			if onEcho != nil {
				onEcho(n)
			}
			n++
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestTurnLoadServe(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0", "--user", "u:p", "--allow-peer", "127.0.0.0/8")
	udp := r.endpoint(t, "udp")
	uri := "turn:" + udp.String()

	t.Run("udp channel", func(t *testing.T) {
		rep := runLoad(t, uri, "--user", "u", "--pass", "p", "--allocations", "4", "--rate", "200", "--duration", "1s")
		checkLossless(t, rep, 4, "channel")
	})

	t.Run("tcp send to an echo peer", func(t *testing.T) {
		peer := startEchoPeer(t, nil)
		tcp := "turn:" + r.endpoint(t, "tcp").String() + "?transport=tcp"
		code, out, errb := runTurnCmd(t, "load", tcp, "--user", "u", "--pass", "p", "--allocations", "3",
			"--rate", "150", "--duration", "1s", "--mode", "send", "--peer", peer.String())
		t.Logf("\n%s", out)
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, errb)
		}
		for _, want := range []string{
			"(tcp): send mode, 100-byte datagrams at 150/s for 1s, to the echo peer " + peer.String(),
			"  allocations  3 of 3 in ",
			"  lost         0 (0.00%)\n",
			"  latency      round-trip p50 ",
			"  relay        sent 0 ChannelData and ",
			"  errors       none\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		// The echo peer cancels the run, as Ctrl-C does, once it has
		// echoed 50 datagrams: the run is then surely sending.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var echoed atomic.Int64
		peer := startEchoPeer(t, func(n int) {
			echoed.Store(int64(n))
			if n == 50 {
				cancel()
			}
		})
		code, out, errb := runTurnCmdContext(t, ctx, "load", uri, "--user", "u", "--pass", "p", "--allocations", "2", "--rate", "500",
			"--duration", "10m", "--mode", "send", "--peer", peer.String(), "--json")
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("the run was not interrupted (echoed %d)", echoed.Load())
		}
		var rep turnloadcmd.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("exit %d, not JSON: %v\n%s\nstderr:\n%s", code, err, out, errb)
		}
		if code != 0 || !rep.Interrupted || rep.Sent < 50 || rep.Received > rep.Sent || rep.Allocations != 2 {
			t.Errorf("exit %d, interrupted %v, sent %d, received %d, allocations %d; want 0, true, at least 50, at most sent, 2",
				code, rep.Interrupted, rep.Sent, rep.Received, rep.Allocations)
		}
	})
}
