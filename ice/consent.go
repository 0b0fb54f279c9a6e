package ice

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// maxConsentTx is how many consent checks may be outstanding; a response
// to any of them refreshes consent. RFC 7675, Section 5.1.
const maxConsentTx = 8

// consent is the Checker's state of consent freshness, RFC 7675.
type consent struct {
	ids  []stun.TransactionID // outstanding consent checks, oldest first
	last time.Time            // latest authenticated answer on the selected pair
	// answered counts those answers
	answered uint64
}

// consentCheck returns a consent check on the selected pair: a Binding
// request authenticated as a connectivity check, without USE-CANDIDATE
// (RFC 7675, Section 5.1). It is not retransmitted: the driver sends a new
// one every interval. It returns false while no pair is selected.
func (c *Checker) consentCheck() (Outgoing, bool) {
	p := c.nom.selected
	if p == nil {
		return Outgoing{}, false
	}
	o, id := c.consentRequest(p)
	if len(c.consent.ids) == maxConsentTx {
		c.consent.ids = slices.Delete(c.consent.ids, 0, 1)
	}
	c.consent.ids = append(c.consent.ids, id)
	return o, true
}

// consentRequest builds a consent check on p and returns it with its
// transaction ID.
func (c *Checker) consentRequest(p *Pair) (Outgoing, stun.TransactionID) {
	req := checkRequest{
		id:          stun.NewTransactionID(),
		username:    c.cfg.RemoteUfrag + ":" + c.cfg.LocalUfrag,
		priority:    PeerReflexivePriority(&p.Local),
		controlling: c.cl.Controlling(),
		tieBreaker:  c.tieBreaker,
		key:         c.remoteKey,
	}
	return Outgoing{From: p.Local.BaseAddr(), To: p.Remote.Addr, Packet: appendRequest(make([]byte, 0, 128), &req)}, req.id
}

// consentPending reports whether id is an outstanding consent check.
func (c *Checker) consentPending(id stun.TransactionID) bool {
	return slices.Contains(c.consent.ids, id) || c.backupTx(id) >= 0
}

// consentResponse handles a response that may answer a consent check: an
// authenticated success from the selected pair's remote address, received
// on its base, refreshes consent (RFC 7675, Section 5.1). It reports
// whether m answered a consent check.
func (c *Checker) consentResponse(m *stun.Message, local, from netip.AddrPort, now time.Time) bool {
	i := slices.Index(c.consent.ids, m.TransactionID)
	if i < 0 {
		return c.backupResponse(m, local, from, now)
	}
	if m.CheckIntegrity(c.remoteKey) != nil {
		return true // as if never received; the check stays outstanding
	}
	c.consent.ids = slices.Delete(c.consent.ids, i, i+1)
	p := c.nom.selected
	if m.Type.Class == stun.ClassSuccess && p != nil && from == p.Remote.Addr && local == p.Local.BaseAddr() {
		c.consent.last = maxTime(c.consent.last, now)
		c.consent.answered++
	}
	return true
}

// jitter returns d randomized to 0.8-1.2 times d. RFC 7675, Section 5.1.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
