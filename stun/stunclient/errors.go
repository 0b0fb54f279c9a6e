package stunclient

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Errors callers branch on with errors.Is. A STUN error response is not
// among them: it is a *stun.Error (use errors.As).
var (
	// ErrTimeout is wrapped by every *TimeoutError.
	ErrTimeout = errors.New("stun: transaction timed out")
	// ErrUnknownAttribute reports a response carrying comprehension-required
	// attributes this client does not understand, which makes the
	// transaction fail. RFC 8489, Sections 6.3.3 and 6.3.4.
	ErrUnknownAttribute = errors.New("stun: response has unknown comprehension-required attributes")
	// ErrBidDown reports a 401 or 438 whose nonce cookie announces
	// PASSWORD-ALGORITHMS while the attribute is missing: someone on the
	// path may have removed it, so the client does not retry. RFC 8489,
	// Sections 9.2.1 and 9.2.5.
	ErrBidDown = errors.New("stun: challenge lost its PASSWORD-ALGORITHMS (possible bid-down attack)")
	// ErrNoCredentials reports a 401 to a client configured without a
	// username and password.
	ErrNoCredentials = errors.New("stun: server requires credentials and none are configured")
)

// TimeoutError reports a transaction that got no acceptable response: the
// retransmission schedule (or the stream timeout) ran out, or the
// context's deadline passed first. It wraps ErrTimeout, and also
// context.DeadlineExceeded when the context ended it.
type TimeoutError struct {
	Server   netip.AddrPort // where the request was sent
	Waited   time.Duration  // from the first transmission to giving up
	Attempts int            // transmissions of the request
	cause    error          // context.DeadlineExceeded, or nil
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("stun: no response from %s after %s (%s)", e.Server, FormatDuration(e.Waited), plural(e.Attempts, "attempt"))
}

// Unwrap returns ErrTimeout and, if the context's deadline ended the
// transaction, context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrTimeout, e.cause}
	}
	return []error{ErrTimeout}
}

// Timeout reports true, so a *TimeoutError satisfies net.Error's test.
func (e *TimeoutError) Timeout() bool { return true }

// AlternateServerError is what Do returns when it will not follow a 300
// (Try Alternate): a second redirection in one call, a redirection on a
// stream (the Client is bound to its connection; the caller may dial
// Alternate itself, validating a TLS certificate against Domain when it is
// set), or a 300 without a usable ALTERNATE-SERVER. It wraps the
// *stun.Error of the 300 response. RFC 8489, Section 10.
type AlternateServerError struct {
	Alternate netip.AddrPort // zero if the response had no usable ALTERNATE-SERVER
	Domain    string         // ALTERNATE-DOMAIN, if present
	Err       *stun.Error
	why       string
}

func (e *AlternateServerError) Error() string {
	s := fmt.Sprintf("stun: server redirects to %s", e.Alternate)
	if !e.Alternate.IsValid() {
		s = "stun: 300 Try Alternate"
	}
	if e.why != "" { // empty when built outside this package
		s += " (" + e.why + ")"
	}
	return s
}

func (e *AlternateServerError) Unwrap() error { return e.Err }

// FormatDuration prints d for people: rounded to the millisecond below a
// minute (39.5s, 1.234s, 12ms), to the second above.
func FormatDuration(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	if d >= time.Millisecond {
		return d.Round(time.Millisecond).String()
	}
	return d.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
