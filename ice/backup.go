package ice

import (
	"net/netip"
	"slices"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// backup is the relayed pair kept alive while a direct pair is selected,
// so that the Agent can move back to it when the direct pair goes
// disconnected. RFC 7675 lets consent run on any pair the agent sends
// on; the backup gets a consent check at each consent interval of the
// selected pair, which also keeps its TURN permission and channel in use
// (turnclient refreshes those while they are used).
type backup struct {
	pair *Pair      // a valid relayed pair; nil: none
	txs  []backupTx // its outstanding consent checks, oldest first
	last time.Time  // its latest answer, or when it became the backup
	// lastSent is when the latest check that was answered went out.
	lastSent time.Time
	// answered counts the answers on every backup pair so far.
	answered uint64
}

// backupTx is a consent check on the backup pair.
type backupTx struct {
	id stun.TransactionID
	at time.Time // sent
}

// backupPair returns the valid relayed pair to keep as the backup: the
// best one, while the selected pair is direct; nil otherwise.
func (c *Checker) backupPair() *Pair {
	sel := c.nom.selected
	if sel == nil || isRelayed(sel) {
		return nil
	}
	for _, p := range c.nom.valid {
		if isRelayed(p) {
			return p
		}
	}
	return nil
}

// needBackup reports whether ordinary checks should go on after a direct
// pair was selected (which otherwise ends them, RFC 8445, Section 8.3):
// until a relayed pair succeeds, so that there is a backup, or no relayed
// pair is left to check.
func (c *Checker) needBackup() bool {
	if c.backupPair() != nil {
		return false
	}
	for _, p := range c.cl.pairs {
		if isRelayed(p) && (p.State == PairWaiting || p.State == PairFrozen) {
			return true
		}
	}
	return false
}

// backupCheck returns a consent check on the backup pair at now, like
// consentCheck's on the selected pair; false when there is no backup. A
// new backup pair starts fresh: its check has succeeded.
func (c *Checker) backupCheck(now time.Time) (Outgoing, bool) {
	p := c.backupPair()
	if p != c.bk.pair {
		c.bk = backup{pair: p, last: now, answered: c.bk.answered}
	}
	if p == nil {
		return Outgoing{}, false
	}
	o, id := c.consentRequest(p)
	if len(c.bk.txs) == maxConsentTx {
		c.bk.txs = slices.Delete(c.bk.txs, 0, 1)
	}
	c.bk.txs = append(c.bk.txs, backupTx{id: id, at: now})
	return o, true
}

// backupResponse handles a response that may answer a consent check of
// the backup pair, as consentResponse does for the selected pair.
func (c *Checker) backupResponse(m *stun.Message, local, from netip.AddrPort, now time.Time) bool {
	i := c.backupTx(m.TransactionID)
	if i < 0 {
		return false
	}
	if m.CheckIntegrity(c.remoteKey) != nil {
		return true
	}
	sent := c.bk.txs[i].at
	c.bk.txs = slices.Delete(c.bk.txs, i, i+1)
	p := c.bk.pair
	if m.Type.Class == stun.ClassSuccess && p != nil && from == p.Remote.Addr && local == p.Local.BaseAddr() {
		c.bk.last = maxTime(c.bk.last, now)
		c.bk.lastSent = maxTime(c.bk.lastSent, sent)
		c.bk.answered++
	}
	return true
}

// backupTx returns the index of the backup's consent check id, or -1.
func (c *Checker) backupTx(id stun.TransactionID) int {
	return slices.IndexFunc(c.bk.txs, func(t backupTx) bool { return t.id == id })
}

// failover selects the backup pair, for a selected pair that went
// disconnected, when the backup's consent is fresh at now: answered
// within fresh, and a check of it sent after since (the selected pair's
// latest answer) was answered, so that the backup still works where the
// selected pair stopped. It reports whether it did.
//
// RFC 8445, Section 8.1.1 read strictly lets the controlling agent change
// the selected pair only by an ICE restart. Like the WebRTC
// implementations, each agent here instead switches its selected pair on
// its own: both run the same rule, each when its own direct pair goes
// stale, and since an agent reads data from any of the peer's candidates
// (Section 12.2), data flows as soon as either side has switched. The
// controlling agent goes on nominating the better direct pair, so that
// both move back to it if it answers again.
func (c *Checker) failover(now, since time.Time, fresh time.Duration) bool {
	p := c.bk.pair
	if p == nil || p != c.backupPair() || now.Sub(c.bk.last) >= fresh || !c.bk.lastSent.After(since) {
		return false
	}
	c.nom.selected = p
	c.consent.last = maxTime(c.consent.last, c.bk.last) // the old pair's late answers stay known
	c.bk = backup{answered: c.bk.answered}
	return true
}
