package stunclient

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// TransactionConfig describes one client transaction.
type TransactionConfig struct {
	// ID is the request's transaction ID; only responses carrying it are
	// considered.
	ID stun.TransactionID
	// Method is the request's method; responses of another method are
	// discarded.
	Method stun.Method
	// Server is where the request goes. The transaction uses it only to
	// name the server in its errors.
	Server netip.AddrPort
	// Reliable selects the TCP/TLS behaviour of RFC 8489, Section 6.2.2:
	// one transmission, then StreamTimeout. Otherwise Retransmit applies
	// (Section 6.2.1).
	Reliable      bool
	Retransmit    Retransmit
	StreamTimeout time.Duration // zero means 39.5 s
	// Key is set when the request carries MESSAGE-INTEGRITY or
	// MESSAGE-INTEGRITY-SHA256: responses must then be authenticated with
	// it (RFC 8489, Sections 9.1.4 and 9.2.5), except 401 and 438, which a
	// server cannot always sign and which the caller handles.
	Key []byte
	// Integrity names the one integrity attribute the response must carry
	// (stun.AttrMessageIntegrity or stun.AttrMessageIntegritySHA256); zero
	// accepts either. Used only with Key.
	Integrity stun.AttrType
	// Comprehends reports the comprehension-required attributes the caller
	// understands beyond those of RFC 8489 (see KnownRFC8489). A response
	// with any other attribute below 0x8000 fails the transaction.
	Comprehends func(stun.AttrType) bool
}

// Transaction is the client side of one STUN transaction as a state
// machine without I/O: the retransmission schedule of RFC 8489, Section
// 6.2, and the response checks of Sections 6.3, 7.3, 9.1.4 and 9.2.5. The
// caller owns the socket and the clock:
//
//	for {
//		send, deadline, err := t.Next(now)   // err: a *TimeoutError
//		if send { write the request }
//		wait until deadline or a packet arrives; on a packet:
//		done, err := t.Receive(msg, now)     // !done && err != nil: discarded
//	}
//
// Matching a response to its transaction (several may be outstanding on
// one socket) is the caller's job; Receive checks the ID again. A
// Transaction is not safe for concurrent use; it keeps no reference to the
// messages given to it. Its zero value is not usable: use NewTransaction.
type Transaction struct {
	cfg      TransactionConfig
	started  bool
	finished bool
	first    time.Time // first transmission
	last     time.Time // latest transmission
	next     time.Time // next deadline
	sends    int
	rtt      time.Duration
	// badIntegrity counts responses discarded because their integrity
	// check failed; if the transaction then times out, that is what it
	// reports. RFC 8489, Section 9.2.5.
	badIntegrity int
}

// NewTransaction returns a transaction that has sent nothing yet. Call
// Next to start it.
func NewTransaction(cfg TransactionConfig) *Transaction {
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = StreamTimeout
	}
	cfg.Retransmit = cfg.Retransmit.withDefaults()
	return &Transaction{cfg: cfg}
}

// ID returns the transaction ID.
func (t *Transaction) ID() stun.TransactionID { return t.cfg.ID }

// Attempts returns how many times the request has been sent.
func (t *Transaction) Attempts() int { return t.sends }

// RTT returns, once a response was accepted, the time from the latest
// transmission to the response. After retransmissions the response may
// answer an earlier one (Karn's problem), so this can undercount.
func (t *Transaction) RTT() time.Duration { return t.rtt }

// Next advances the timers to now. It returns whether the request must be
// (re)transmitted now, the time at which Next must be called again, and,
// when the transaction has run out of time, a *TimeoutError (or, if every
// response was discarded for failing its integrity check, an error
// wrapping stun.ErrIntegrity). The first call starts the transaction and
// always asks for a transmission.
func (t *Transaction) Next(now time.Time) (send bool, deadline time.Time, err error) {
	if t.finished {
		return false, time.Time{}, errFinished
	}
	if !t.started {
		t.started, t.first = true, now
		return true, t.transmit(now), nil
	}
	if now.Before(t.next) {
		return false, t.next, nil
	}
	if t.cfg.Reliable {
		return false, time.Time{}, t.fail(now)
	}
	if _, last := t.cfg.Retransmit.Wait(t.sends - 1); last {
		return false, time.Time{}, t.fail(now)
	}
	return true, t.transmit(now), nil
}

// transmit records a transmission at now and returns the next deadline.
func (t *Transaction) transmit(now time.Time) time.Time {
	t.last = now
	t.sends++
	if t.cfg.Reliable {
		t.next = now.Add(t.cfg.StreamTimeout)
	} else {
		w, _ := t.cfg.Retransmit.Wait(t.sends - 1)
		t.next = now.Add(w)
	}
	return t.next
}

// Expire ends the transaction early (the caller's context ended) and
// returns the error Next would have returned on running out of time.
func (t *Transaction) Expire(now time.Time) error {
	if t.finished {
		return errFinished
	}
	return t.fail(now)
}

func (t *Transaction) fail(now time.Time) error {
	t.finished = true
	if t.badIntegrity > 0 {
		return fmt.Errorf("stun: all %s from %s failed the integrity check: %w",
			plural(t.badIntegrity, "response"), t.cfg.Server, stun.ErrIntegrity)
	}
	return &TimeoutError{Server: t.cfg.Server, Waited: now.Sub(t.first), Attempts: t.sends}
}

// Reasons Receive gives for discarding a message. They are not returned
// by the Client; they are for counting and logging.
var (
	errFinished    = errors.New("stun: transaction already finished")
	errNotResponse = errors.New("stun: not a response to this transaction")
	errBadNonce    = errors.New("stun: NONCE announces PASSWORD-ALGORITHMS but the response has none")
)

// Receive offers m, a parsed message with this transaction's ID, at time
// now. It returns:
//
//   - done == false, err != nil: m was discarded (err says why); keep
//     waiting. RFC 8489 wants such messages ignored "as if never received".
//   - done == true, err == nil: m is the response. It may be an error
//     response; the caller reads its ERROR-CODE (which Receive has checked
//     to be well formed).
//   - done == true, err != nil: the transaction failed on m (unknown
//     comprehension-required attributes, an error response without a
//     valid ERROR-CODE, or a failed integrity check over TCP/TLS).
func (t *Transaction) Receive(m *stun.Message, now time.Time) (done bool, err error) {
	switch {
	case t.finished || !t.started:
		return false, errFinished
	case m.Classic || m.TransactionID != t.cfg.ID:
		return false, errNotResponse
	case m.Type.Method != t.cfg.Method:
		return false, fmt.Errorf("%w: method %s", errNotResponse, m.Type.Method)
	case m.Type.Class != stun.ClassSuccess && m.Type.Class != stun.ClassError:
		return false, fmt.Errorf("%w: a %s", errNotResponse, m.Type.Class)
	}
	// RFC 8489, Section 7.3: a FINGERPRINT, when present, must be right.
	if m.Has(stun.AttrFingerprint) {
		if err := m.CheckFingerprint(); err != nil {
			return false, err
		}
	}
	code := 0
	if m.Type.Class == stun.ClassError {
		c, _, err := m.ErrorCode()
		if err != nil {
			// RFC 8489, Section 6.3.4: the transaction has failed.
			return t.finish(now, fmt.Errorf("stun: error response from %s without a valid ERROR-CODE: %w", t.cfg.Server, err))
		}
		code = c
	}
	challenge := code == stun.CodeUnauthorized || code == stun.CodeStaleNonce
	// RFC 8489, Section 9.2.5: outside a challenge, a response whose nonce
	// cookie promises PASSWORD-ALGORITHMS must carry them.
	if !challenge && !m.Has(stun.AttrPasswordAlgorithms) {
		if nonce, err := m.Nonce(); err == nil {
			if f, ok := stun.NonceFeatures(nonce); ok && f&stun.FeaturePasswordAlgorithms != 0 {
				return false, errBadNonce
			}
		}
	}
	if t.cfg.Key != nil && !challenge {
		if err := t.checkIntegrity(m); err != nil {
			if t.cfg.Reliable {
				return t.finish(now, err)
			}
			t.badIntegrity++
			return false, err
		}
	}
	if unknown := m.UnknownRequired(nil, t.comprehends); len(unknown) > 0 {
		return t.finish(now, fmt.Errorf("%w: %v from %s", ErrUnknownAttribute, unknown, t.cfg.Server))
	}
	return t.finish(now, nil)
}

func (t *Transaction) finish(now time.Time, err error) (bool, error) {
	t.finished = true
	t.rtt = now.Sub(t.last)
	return true, err
}

// checkIntegrity authenticates a response to a request that carried
// integrity. RFC 8489, Sections 9.1.4 and 9.2.5.
func (t *Transaction) checkIntegrity(m *stun.Message) error {
	has256, has1 := m.Has(stun.AttrMessageIntegritySHA256), m.Has(stun.AttrMessageIntegrity)
	switch {
	case has256 && t.cfg.Integrity != stun.AttrMessageIntegrity:
		return m.CheckIntegritySHA256(t.cfg.Key)
	case has1 && t.cfg.Integrity != stun.AttrMessageIntegritySHA256:
		return m.CheckIntegrity(t.cfg.Key)
	}
	want := "MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256"
	if t.cfg.Integrity != 0 {
		want = t.cfg.Integrity.String()
	}
	return fmt.Errorf("%w: response from %s lacks %s", stun.ErrIntegrity, t.cfg.Server, want)
}

func (t *Transaction) comprehends(a stun.AttrType) bool {
	return KnownRFC8489(a) || (t.cfg.Comprehends != nil && t.cfg.Comprehends(a))
}

// KnownRFC8489 reports whether a is one of the comprehension-required
// attributes of RFC 8489 that may appear in a response and that this
// package understands. A usage (TURN, RFC 5780, ICE) adds its own through
// Config.Comprehends.
func KnownRFC8489(a stun.AttrType) bool {
	switch a {
	case stun.AttrMappedAddress, stun.AttrXORMappedAddress,
		stun.AttrUsername, stun.AttrUserhash,
		stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256,
		stun.AttrErrorCode, stun.AttrUnknownAttributes,
		stun.AttrRealm, stun.AttrNonce, stun.AttrPasswordAlgorithm:
		return true
	}
	return false
}
