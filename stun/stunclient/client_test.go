package stunclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Addresses of the in-memory network. They never reach a real socket.
const (
	serverAddr = "192.0.2.1:3478"
	altAddr    = "192.0.2.2:3478"
	clientAddr = "198.51.100.7:40000"
)

var server = netip.MustParseAddrPort(serverAddr)

// TestRetransmitSchedule checks RFC 8489, Section 6.2.1 end to end: with
// the defaults a request is sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s
// and the transaction fails at 39.5 s.
func TestRetransmitSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv := serveMem(t, n.listen(t, serverAddr), silent)
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		start := time.Now()
		_, err := c.Binding(t.Context(), server)
		failedAt := time.Since(start)

		want := []time.Duration{0, 500, 1500, 3500, 7500, 15500, 31500}
		reqs := srv.requests()
		if len(reqs) != len(want) {
			t.Fatalf("server saw %d requests, want %d", len(reqs), len(want))
		}
		for i, r := range reqs {
			if got := r.at.Sub(start); got != want[i]*time.Millisecond {
				t.Errorf("send %d at %v, want %v", i, got, want[i]*time.Millisecond)
			}
			if r.msg.TransactionID != reqs[0].msg.TransactionID {
				t.Errorf("retransmission %d changed the transaction ID", i)
			}
		}
		if failedAt != 39500*time.Millisecond {
			t.Errorf("failed after %v, want 39.5s", failedAt)
		}
		te, ok := errors.AsType[*TimeoutError](err)
		if !ok {
			t.Fatalf("err = %v (%T), want *TimeoutError", err, err)
		}
		if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is: ErrTimeout %v, DeadlineExceeded %v", errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded))
		}
		if te.Attempts != 7 || te.Waited != 39500*time.Millisecond || te.Server != server {
			t.Errorf("TimeoutError = %+v", te)
		}
		if got, want := err.Error(), "stun: no response from 192.0.2.1:3478 after 39.5s (7 attempts)"; got != want {
			t.Errorf("message %q, want %q", got, want)
		}
		if s := c.Stats(); s.Sent != 7 || s.Retransmits != 6 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestRetransmitCustomSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv := serveMem(t, n.listen(t, serverAddr), silent)
		c := mustNew(t, n.listen(t, clientAddr), Config{Retransmit: Retransmit{RTO: 100 * time.Millisecond, Rc: 3, Rm: 4}})
		start := time.Now()
		_, err := c.Binding(t.Context(), server)
		if got := time.Since(start); got != 700*time.Millisecond { // 100 + 200 + 4*100
			t.Errorf("failed after %v, want 700ms", got)
		}
		if !errors.Is(err, ErrTimeout) || len(srv.requests()) != 3 {
			t.Errorf("err %v after %d requests", err, len(srv.requests()))
		}
	})
}

// TestContextDeadline: a context deadline before the schedule ends gives
// a *TimeoutError that also wraps context.DeadlineExceeded; a
// cancellation gives context.Canceled.
func TestContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), silent)
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := c.Binding(ctx, server)
		te, ok := errors.AsType[*TimeoutError](err)
		if !ok || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		if te.Waited != 2*time.Second || te.Attempts != 3 {
			t.Errorf("TimeoutError = %+v, want 2s and 3 attempts", te)
		}

		ctx, cancel = context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		_, err = c.Binding(ctx, server)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("cancelled: err = %v", err)
		}
	})
}

// TestLateDuplicateUnmatched: the server ignores the first transmission,
// answers the second twice, a wrong transaction ID comes first, and a
// copy of the answer arrives long after the transaction ended. Only one
// response is taken; the others are counted.
func TestLateDuplicateUnmatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		var calls atomic.Int32
		var mu sync.Mutex
		var saved []byte
		srvConn := n.listen(t, serverAddr)
		serveMem(t, srvConn, func(req *stun.Message, from netip.AddrPort) [][]byte {
			if calls.Add(1) == 1 {
				return nil
			}
			wrong := *req
			wrong.TransactionID[0] ^= 0xff
			ok := bindingSuccess(req, from)
			mu.Lock()
			saved = ok
			mu.Unlock()
			return [][]byte{bindingSuccess(&wrong, netip.MustParseAddrPort("203.0.113.9:1")), ok, ok}
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		res, err := c.Binding(t.Context(), server)
		if err != nil {
			t.Fatal(err)
		}
		if want := netip.MustParseAddrPort(clientAddr); res.Mapped != want || res.Local != want || res.Server != server {
			t.Errorf("result %+v", res)
		}
		synctest.Wait()
		time.Sleep(10 * time.Second) // fake time: the late copy arrives 10 s later
		mu.Lock()
		defer mu.Unlock()
		srvConn.WriteTo(saved, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(clientAddr)))
		synctest.Wait()
		s := c.Stats()
		if s.Received != 1 || s.Unmatched != 1 || s.Late != 2 || s.Sent != 2 {
			t.Errorf("stats %+v, want 1 received, 1 unmatched, 2 late, 2 sent", s)
		}
	})
}

// TestDiscardedResponses: responses with a wrong FINGERPRINT, of another
// method, or that do not parse are dropped; the good one that follows is
// taken. Non-STUN datagrams count as malformed.
func TestDiscardedResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, from netip.AddrPort) [][]byte {
			badFP := stun.AppendFingerprint(bindingSuccess(req, from))
			badFP[len(badFP)-1] ^= 1
			otherMethod := stun.AppendHeader(nil, stun.Type{Method: stun.MethodAllocate, Class: stun.ClassSuccess}, req.TransactionID)
			truncated := bindingSuccess(req, from)
			truncated = append(truncated, 0x80, 0x22, 0, 40) // attribute longer than the message
			truncated[3] += 4
			return [][]byte{{0xde, 0xad}, badFP, otherMethod, truncated, stun.AppendFingerprint(bindingSuccess(req, from))}
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		if _, err := c.Binding(t.Context(), server); err != nil {
			t.Fatal(err)
		}
		s := c.Stats()
		if s.Received != 1 || s.Discarded != 2 || s.Malformed != 2 || s.Sent != 1 {
			t.Errorf("stats %+v, want 1 received, 2 discarded, 2 malformed, 1 sent", s)
		}
	})
}

func TestErrorResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, _ netip.AddrPort) [][]byte {
			return [][]byte{errorResponse(req, stun.CodeBadRequest)}
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		resp, err := c.Do(t.Context(), server, stun.MethodBinding, nil)
		se, ok := errors.AsType[*stun.Error](err)
		if !ok || se.Code != 400 || se.Reason != "Bad Request" {
			t.Fatalf("err = %v, want *stun.Error 400", err)
		}
		if resp == nil || resp.Message.Type != stun.BindingError {
			t.Errorf("response %+v", resp)
		}
	})
}

// TestUnknownComprehensionRequired: RFC 8489, Section 6.3.3: a response
// with an unknown comprehension-required attribute fails the transaction,
// unless the caller said it understands it.
func TestUnknownComprehensionRequired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, from netip.AddrPort) [][]byte {
			return [][]byte{stun.AppendAttr(bindingSuccess(req, from), 0x7ff0, []byte{1, 2, 3, 4})}
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		if _, err := c.Binding(t.Context(), server); !errors.Is(err, ErrUnknownAttribute) {
			t.Errorf("err = %v, want ErrUnknownAttribute", err)
		}
		c2 := mustNew(t, n.listen(t, "198.51.100.7:40001"), Config{Comprehends: func(a stun.AttrType) bool { return a == 0x7ff0 }})
		if _, err := c2.Binding(t.Context(), server); err != nil {
			t.Errorf("with Comprehends: %v", err)
		}
	})
}

func TestNoMappedAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, _ netip.AddrPort) [][]byte {
			return [][]byte{stun.AppendHeader(nil, stun.BindingSuccess, req.TransactionID)}
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		if _, err := c.Binding(t.Context(), server); !errors.Is(err, ErrNoMappedAddress) || !errors.Is(err, stun.ErrAttrNotFound) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestConcurrentTransactions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		var calls atomic.Int32
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, from netip.AddrPort) [][]byte {
			if calls.Add(1)%3 == 0 {
				return nil // every third transmission is "lost"
			}
			return echoBinding(req, from)
		})
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				if _, err := c.Binding(t.Context(), server); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if s := c.Stats(); s.Received != 100 || s.Unmatched != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestClose: Close fails the outstanding transactions, later calls fail
// too, and a second Close is harmless.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		serveMem(t, n.listen(t, serverAddr), silent)
		c, err := New(n.listen(t, clientAddr), Config{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() {
			_, err := c.Binding(context.Background(), server)
			done <- err
		}()
		time.Sleep(time.Second)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("in-flight: %v", err)
		}
		if _, err := c.Binding(context.Background(), server); !errors.Is(err, net.ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestAlternateServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		alt := netip.MustParseAddrPort(altAddr)
		redirect := func(to netip.AddrPort) handler {
			return func(req *stun.Message, _ netip.AddrPort) [][]byte {
				b := errorResponse(req, stun.CodeTryAlternate)
				b = stun.AppendAddress(b, stun.AttrAlternateServer, netip.MustParseAddrPort("[2001:db8::1]:3478"))
				b = stun.AppendAddress(b, stun.AttrAlternateServer, to)
				return [][]byte{b}
			}
		}
		serveMem(t, n.listen(t, serverAddr), redirect(alt))
		altSrv := serveMem(t, n.listen(t, altAddr), echoBinding)
		c := mustNew(t, n.listen(t, clientAddr), Config{})
		res, err := c.Binding(t.Context(), server)
		if err != nil {
			t.Fatal(err)
		}
		if res.Server != alt || res.Response.Server != alt || len(altSrv.requests()) != 1 {
			t.Errorf("answered by %s (request to %s), want %s", res.Server, res.Response.Server, alt)
		}

		// A redirection to a server that redirects again is not followed.
		serveMem(t, n.listen(t, "192.0.2.3:3478"), redirect(netip.MustParseAddrPort("192.0.2.4:3478")))
		serveMem(t, n.listen(t, "192.0.2.4:3478"), redirect(server))
		_, err = c.Binding(t.Context(), netip.MustParseAddrPort("192.0.2.3:3478"))
		ae, ok := errors.AsType[*AlternateServerError](err)
		if !ok || ae.Alternate != server {
			t.Fatalf("err = %v, want *AlternateServerError to %s", err, server)
		}
		if se, ok := errors.AsType[*stun.Error](err); !ok || se.Code != 300 {
			t.Errorf("err does not wrap the 300: %v", err)
		}
	})
}

// With NoRedirect the 300 comes back to the caller, ALTERNATE-DOMAIN
// included, and the alternate is not asked.
func TestAlternateServerNoRedirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		alt := netip.MustParseAddrPort(altAddr)
		serveMem(t, n.listen(t, serverAddr), func(req *stun.Message, _ netip.AddrPort) [][]byte {
			b := errorResponse(req, stun.CodeTryAlternate)
			b = stun.AppendAddress(b, stun.AttrAlternateServer, alt)
			b = stun.AppendAttrString(b, stun.AttrAlternateDomain, "alt.example.org")
			return [][]byte{b}
		})
		altSrv := serveMem(t, n.listen(t, altAddr), echoBinding)
		c := mustNew(t, n.listen(t, clientAddr), Config{NoRedirect: true})
		_, err := c.Binding(t.Context(), server)
		ae, ok := errors.AsType[*AlternateServerError](err)
		if !ok || ae.Alternate != alt || ae.Domain != "alt.example.org" {
			t.Fatalf("err = %v, want *AlternateServerError to %s with domain alt.example.org", err, alt)
		}
		if len(altSrv.requests()) != 0 {
			t.Errorf("the alternate was asked %d times", len(altSrv.requests()))
		}
	})
}
