package stunclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
	"github.com/icebreaker-net/icebreaker/stun"
)

// Do sends a request of the given method to server and returns the
// response that ends the exchange. build appends the request's own
// attributes (nil: none). Over a stream, server must be the zero value or
// the connection's peer.
//
// Do follows RFC 8489 through the exchange: on 401 it retries with the
// configured credentials (Section 9.2.5), on 438 with the new nonce, and
// on 300 it follows ALTERNATE-SERVER once over UDP (Section 10). Each
// retry is a new transaction with a new ID, built by calling build again.
//
// Errors:
//   - an error response: the *Response and a *stun.Error (errors.As),
//     possibly wrapped (ErrNoCredentials, ErrBidDown, or an
//     *AlternateServerError for a 300 it does not follow);
//   - no response in time: a *TimeoutError (errors.Is ErrTimeout), also
//     when ctx's deadline passes first;
//   - responses that all failed their integrity check: an error wrapping
//     stun.ErrIntegrity;
//   - ctx cancelled: an error wrapping context.Canceled;
//   - the Client closed: an error wrapping net.ErrClosed.
//
// Responses that do not parse, carry a wrong FINGERPRINT or answer
// another transaction are dropped and counted (Stats); they never fail a
// transaction.
func (c *Client) Do(ctx context.Context, server netip.AddrPort, method stun.Method, build BuildFunc) (*Response, error) {
	server, err := c.target(server)
	if err != nil {
		return nil, err
	}
	redirected := false
	cur := c.cachedAuth(server)
	for round := 0; ; round++ {
		resp, err := c.roundTrip(ctx, server, method, build, cur)
		if err != nil {
			return nil, err
		}
		if resp.Message.Type.Class == stun.ClassSuccess {
			if cur != nil {
				c.storeAuth(server, cur) // RFC 8489, Section 9.2.3.2: cache for later requests.
			}
			return resp, nil
		}
		code, reason, _ := resp.Message.ErrorCode() // the transaction checked it
		serr := &stun.Error{Code: code, Reason: reason}
		switch code {
		case stun.CodeUnauthorized, stun.CodeStaleNonce:
			if round >= maxAuthRounds {
				return resp, serr
			}
			next, err := challenge(&resp.Message, serr, cur, c.cfg.Username, c.cfg.Password)
			if err != nil {
				c.storeAuth(server, nil) // start afresh next time
				return resp, err
			}
			cur = next
		case stun.CodeTryAlternate:
			alt, err := c.alternate(resp, serr, server, redirected)
			if err != nil {
				return resp, err
			}
			c.log.Debug("stun: following ALTERNATE-SERVER", "from", server, "to", alt)
			server, redirected = alt, true
			cur = c.cachedAuth(server)
		default:
			return resp, serr
		}
	}
}

func (c *Client) target(server netip.AddrPort) (netip.AddrPort, error) {
	server = netx.Unmap(server)
	if c.reliable {
		if server.IsValid() && server != c.remote {
			return server, fmt.Errorf("stun: this client is connected to %s, not %s", c.remote, server)
		}
		return c.remote, nil
	}
	if !server.IsValid() || server.Port() == 0 || server.Addr().IsUnspecified() {
		return server, fmt.Errorf("stun: invalid server address %q", server)
	}
	return server, nil
}

// alternate picks the ALTERNATE-SERVER to follow after a 300: the first of
// the same family as server (RFC 8489, Section 10 puts that one first).
func (c *Client) alternate(resp *Response, serr *stun.Error, server netip.AddrPort, redirected bool) (netip.AddrPort, error) {
	e := &AlternateServerError{Err: serr}
	e.Domain, _ = resp.Message.AlternateDomain()
	for _, a := range resp.Message.Attrs {
		if a.Type != stun.AttrAlternateServer {
			continue
		}
		ap, err := stun.ParseAddress(a.Value)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
			continue
		}
		ap = netx.Unmap(ap)
		if ap.Addr().Is4() == server.Addr().Is4() {
			e.Alternate = ap
			break
		}
	}
	switch {
	case !e.Alternate.IsValid():
		e.why = "no usable ALTERNATE-SERVER of the same address family"
	case redirected:
		e.why = "already redirected once"
	case c.reliable:
		e.why = "a stream client cannot follow it; dial the alternate server"
	case e.Alternate == server:
		e.why = "it redirects to itself"
	case c.cfg.NoRedirect:
		e.why = "left to the caller"
	default:
		return e.Alternate, nil
	}
	return netip.AddrPort{}, e
}

// buildRequest assembles one transaction's request.
func (c *Client) buildRequest(method stun.Method, id stun.TransactionID, build BuildFunc, auth *authState) ([]byte, error) {
	b := stun.AppendHeader(make([]byte, 0, 256), stun.Type{Method: method, Class: stun.ClassRequest}, id)
	if build != nil {
		b = build(b, id)
		if !stun.Is(b) {
			return nil, errors.New("stun: BuildFunc returned a buffer that is not a STUN message")
		}
	}
	if c.cfg.Software != "" {
		b = stun.AppendAttrString(b, stun.AttrSoftware, c.cfg.Software)
	}
	if auth != nil {
		var err error
		if b, err = auth.appendAuth(b, c.cfg.Username); err != nil {
			return nil, err
		}
	}
	if c.cfg.Fingerprint {
		b = stun.AppendFingerprint(b)
	}
	return b, nil
}

// roundTrip runs one transaction to its end.
func (c *Client) roundTrip(ctx context.Context, server netip.AddrPort, method stun.Method, build BuildFunc, auth *authState) (*Response, error) {
	id := stun.NewTransactionID()
	req, err := c.buildRequest(method, id, build, auth)
	if err != nil {
		return nil, err
	}
	inbox := make(chan inbound, inboxSize)
	if err := c.register(id, inbox); err != nil {
		return nil, err
	}
	defer c.unregister(id, inbox)

	tc := TransactionConfig{
		ID:            id,
		Method:        method,
		Server:        server,
		Reliable:      c.reliable,
		Retransmit:    c.cfg.Retransmit,
		StreamTimeout: c.cfg.StreamTimeout,
		Comprehends:   c.cfg.Comprehends,
	}
	if auth != nil {
		tc.Key, tc.Integrity = auth.key, auth.integrity()
	}
	tx := NewTransaction(tc)
	debug := c.log.Enabled(ctx, slog.LevelDebug)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		send, deadline, err := tx.Next(now)
		if err != nil {
			return nil, err
		}
		if send {
			if err := c.write(req, server); err != nil {
				return nil, fmt.Errorf("stun: sending %s request to %s: %w", method, server, err)
			}
			c.sent.Add(1)
			if n := tx.Attempts(); n > 1 {
				c.retransmits.Add(1)
				if debug {
					c.log.Debug("stun: retransmit", "server", server, "method", method, "attempt", n)
				}
			}
		}
		timer.Reset(deadline.Sub(now))
	wait:
		for {
			select {
			case <-ctx.Done():
				err := tx.Expire(time.Now())
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, fmt.Errorf("stun: %s request to %s: %w", method, server, ctx.Err())
				}
				if te, ok := errors.AsType[*TimeoutError](err); ok {
					te.cause = context.DeadlineExceeded
				}
				return nil, err // a timeout, or the integrity failures that explain it
			case <-c.stop:
				return nil, c.stoppedErr()
			case <-timer.C:
				break wait
			case in := <-inbox:
				resp := &Response{Raw: in.b, From: in.from, Server: server}
				if err := resp.Message.Parse(resp.Raw); err != nil {
					c.malformed.Add(1)
					if debug {
						c.log.Debug("stun: dropped unparsable response", "from", in.from, "err", err)
					}
					continue
				}
				done, err := tx.Receive(&resp.Message, time.Now())
				if !done {
					c.discarded.Add(1)
					if debug {
						c.log.Debug("stun: discarded response", "from", in.from, "err", err)
					}
					continue
				}
				if err != nil {
					return nil, err
				}
				c.received.Add(1)
				resp.RTT, resp.Attempts = tx.RTT(), tx.Attempts()
				code := 0
				if resp.Message.Type.Class == stun.ClassError {
					code, _, _ = resp.Message.ErrorCode()
				}
				resp.Authenticated = auth != nil && code != stun.CodeUnauthorized && code != stun.CodeStaleNonce
				return resp, nil
			}
		}
	}
}

// BindingResult is what a Binding transaction tells: the server-reflexive
// address and how it was learned.
type BindingResult struct {
	// Mapped is XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS from an RFC 3489
	// server), with IPv4-mapped IPv6 addresses unmapped.
	Mapped netip.AddrPort
	// Local is the Client's socket address (see LocalAddr).
	Local netip.AddrPort
	// Server is the address that answered.
	Server netip.AddrPort
	// RTT is the round-trip time of the answered transmission.
	RTT time.Duration
	// Response is the whole response, for callers that want more
	// (SOFTWARE, RESPONSE-ORIGIN, OTHER-ADDRESS).
	Response *Response
}

// ErrNoMappedAddress reports a Binding success response with no usable
// XOR-MAPPED-ADDRESS or MAPPED-ADDRESS.
var ErrNoMappedAddress = errors.New("stun: Binding response has no usable mapped address")

// Binding sends a Binding request to server (zero for a stream Client)
// and returns the mapped address. RFC 8489, Section 3. Errors are those
// of Do, and ErrNoMappedAddress (wrapping the parse error).
func (c *Client) Binding(ctx context.Context, server netip.AddrPort) (BindingResult, error) {
	resp, err := c.Do(ctx, server, stun.MethodBinding, nil)
	if err != nil {
		return BindingResult{}, err
	}
	if !resp.Message.Has(stun.AttrXORMappedAddress) && !resp.Message.Has(stun.AttrMappedAddress) {
		return BindingResult{}, fmt.Errorf("%w: %w: XOR-MAPPED-ADDRESS or MAPPED-ADDRESS", ErrNoMappedAddress, stun.ErrAttrNotFound)
	}
	mapped, err := resp.Message.ReflexiveAddress()
	if err != nil {
		return BindingResult{}, fmt.Errorf("%w: %w", ErrNoMappedAddress, err)
	}
	return BindingResult{
		Mapped:   netx.Unmap(mapped),
		Local:    c.local,
		Server:   resp.From,
		RTT:      resp.RTT,
		Response: resp,
	}, nil
}
