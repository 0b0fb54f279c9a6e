package mailbox

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
)

// The rendezvous state: per application ID, nameplates that point at
// mailboxes, and mailboxes that hold each side's messages. Everything here
// runs with Server.mu held (the methods end in Locked), changes memory
// first and records each change in the journal for the database.

// protoError is an error the client is told about in an error message.
type protoError string

func (e protoError) Error() string { return string(e) }

// The errors the reference server sends, word for word where clients may
// look at them ("crowded", "reclaimed").
const (
	errCrowded   protoError = "crowded"
	errReclaimed protoError = "reclaimed"
)

type app struct {
	id         string
	nameplates map[string]*nameplate
	mailboxes  map[string]*mailbox
}

// nameplate is a short name ("4") that two sides claim to find a mailbox.
type nameplate struct {
	name    string
	mailbox *mailbox
	sides   []npSide // at most 2
}

type npSide struct {
	Side    string `json:"side"`
	Claimed bool   `json:"claimed"`
}

// mailbox holds the messages of one rendezvous.
type mailbox struct {
	id        string
	app       *app
	nameplate string     // the nameplate that names it, "" if none
	owner     netip.Addr // the client address that created it (MailboxesPerIP)
	sides     []mbSide   // at most 2
	msgs      []message
	bytes     int       // sum of the stored bodies
	listeners []*conn   // connections that opened it and listen
	updated   time.Time // last activity; pruning counts from here
	seq       int64     // number of messages ever added (the database key)
}

type mbSide struct {
	Side   string `json:"side"`
	Opened bool   `json:"opened"`
	Mood   string `json:"mood,omitempty"`
}

// message is one stored message, as delivered: wire is the encoded
// "message" frame, shared by every listener.
type message struct {
	side string
	wire []byte
	size int // bytes of the body
}

func (s *Server) appLocked(id string) *app {
	a := s.apps[id]
	if a == nil {
		a = &app{id: id, nameplates: map[string]*nameplate{}, mailboxes: map[string]*mailbox{}}
		s.apps[id] = a
	}
	return a
}

// dropAppLocked forgets an application with nothing left in it, so that
// random appids cannot grow the table.
func (s *Server) dropAppLocked(a *app) {
	if len(a.nameplates) == 0 && len(a.mailboxes) == 0 {
		delete(s.apps, a.id)
	}
}

// allocateLocked claims the lowest free nameplate number for side.
func (s *Server) allocateLocked(a *app, side string, client netip.Addr, now time.Time) (string, error) {
	for n := 1; ; n++ {
		name := strconv.Itoa(n)
		if _, used := a.nameplates[name]; !used {
			_, err := s.claimLocked(a, name, side, client, now)
			return name, err
		}
	}
}

// claimLocked adds side to nameplate name, creating it and its mailbox if
// needed, and opens the mailbox for side (as the reference server does), and
// returns the mailbox ID.
func (s *Server) claimLocked(a *app, name, side string, client netip.Addr, now time.Time) (string, error) {
	np := a.nameplates[name]
	if np == nil {
		mb, err := s.newMailboxLocked(a, "", client, now)
		if err != nil {
			return "", err
		}
		np = &nameplate{name: name, mailbox: mb}
		mb.nameplate = name
		a.nameplates[name] = np
		s.putMailboxLocked(mb)
	}
	i := slices.IndexFunc(np.sides, func(x npSide) bool { return x.Side == side })
	switch {
	case i >= 0 && !np.sides[i].Claimed:
		return "", errReclaimed
	case i < 0 && len(np.sides) >= 2:
		s.stats.crowded.Add(1)
		return "", errCrowded
	case i < 0:
		np.sides = append(np.sides, npSide{Side: side, Claimed: true})
		s.putNameplateLocked(a, np)
	}
	if err := s.openSideLocked(np.mailbox, side, now); err != nil {
		return "", err
	}
	return np.mailbox.id, nil
}

// releaseLocked ends side's claim on nameplate name; the nameplate is
// deleted (and its number free again) once no side claims it. Releasing
// an unknown nameplate does nothing, as in the reference server.
func (s *Server) releaseLocked(a *app, name, side string) {
	np := a.nameplates[name]
	if np == nil {
		return
	}
	i := slices.IndexFunc(np.sides, func(x npSide) bool { return x.Side == side })
	if i < 0 {
		return
	}
	np.sides[i].Claimed = false
	if slices.ContainsFunc(np.sides, func(x npSide) bool { return x.Claimed }) {
		s.putNameplateLocked(a, np)
		return
	}
	s.deleteNameplateLocked(a, np)
}

func (s *Server) deleteNameplateLocked(a *app, np *nameplate) {
	delete(a.nameplates, np.name)
	if np.mailbox != nil && np.mailbox.nameplate == np.name {
		np.mailbox.nameplate = ""
	}
	s.j.add(record{op: opDelNameplate, app: a.id, key: np.name})
	s.dropAppLocked(a)
}

// newMailboxLocked creates a mailbox, counting it against the client's
// address and the server's total. id "" picks a random one.
func (s *Server) newMailboxLocked(a *app, id string, client netip.Addr, now time.Time) (*mailbox, error) {
	if s.nMailboxes >= s.cfg.MaxMailboxes {
		s.stats.mailboxesRefused.Add(1)
		return nil, protoError(fmt.Sprintf("the server holds too many mailboxes (%d): try again later", s.cfg.MaxMailboxes))
	}
	if err := s.mbLimit.Acquire(client); err != nil {
		s.stats.mailboxesRefused.Add(1)
		if errors.Is(err, iplimit.ErrTooManyConns) {
			return nil, protoError(fmt.Sprintf("too many open mailboxes from your address (at most %d)", s.cfg.MailboxesPerIP))
		}
		return nil, protoError("too many client addresses: try again later")
	}
	if id == "" {
		id = newMailboxID()
	}
	mb := &mailbox{id: id, app: a, owner: client, updated: now}
	a.mailboxes[id] = mb
	s.nMailboxes++
	return mb, nil
}

// newMailboxID returns a random mailbox ID like the reference server's: 8
// random bytes in lower-case base32 without padding.
func newMailboxID() string {
	var b [mailboxIDBytes]byte
	rand.Read(b[:])
	return lowerBase32.EncodeToString(b[:])
}

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// openSideLocked adds side to mb's sides, or refuses a third side.
func (s *Server) openSideLocked(mb *mailbox, side string, now time.Time) error {
	mb.updated = now
	if slices.ContainsFunc(mb.sides, func(x mbSide) bool { return x.Side == side }) {
		return nil
	}
	if len(mb.sides) >= 2 {
		s.stats.crowded.Add(1)
		return errCrowded
	}
	mb.sides = append(mb.sides, mbSide{Side: side, Opened: true})
	s.putMailboxLocked(mb)
	return nil
}

// openLocked opens mailbox id for side, creating it if needed, adds c as a
// listener and returns the stored messages to deliver.
func (s *Server) openLocked(c *conn, a *app, id, side string, now time.Time) (*mailbox, []message, error) {
	mb := a.mailboxes[id]
	if mb == nil {
		var err error
		if mb, err = s.newMailboxLocked(a, id, c.client, now); err != nil {
			return nil, nil, err
		}
		s.putMailboxLocked(mb)
	}
	if err := s.openSideLocked(mb, side, now); err != nil {
		if len(mb.sides) == 0 {
			s.deleteMailboxLocked(mb)
		}
		return nil, nil, err
	}
	mb.listeners = append(mb.listeners, c)
	return mb, slices.Clone(mb.msgs), nil
}

// addLocked stores a message in mb and sends it to every listener.
func (s *Server) addLocked(mb *mailbox, side, phase, body string, id json.RawMessage, now time.Time) error {
	if len(mb.msgs) >= s.cfg.MaxMessages {
		s.stats.mailboxFull.Add(1)
		return protoError(fmt.Sprintf("mailbox full: it holds %d messages, the most this server keeps", len(mb.msgs)))
	}
	if mb.bytes+len(body) > s.cfg.MaxMailboxBytes {
		s.stats.mailboxFull.Add(1)
		return protoError(fmt.Sprintf("mailbox full: its messages would exceed %d bytes", s.cfg.MaxMailboxBytes))
	}
	wire := encode("message", messageMsg{Side: side, Phase: phase, Body: body, ServerRx: serverTime(now), ID: id}, now)
	mb.msgs = append(mb.msgs, message{side: side, wire: wire, size: len(body)})
	mb.bytes += len(body)
	mb.updated = now
	mb.seq++
	s.nMessages++
	s.j.add(record{op: opMessage, app: mb.app.id, key: mb.id, seq: mb.seq, data: wire})
	for _, l := range mb.listeners {
		l.send(wire)
	}
	return nil
}

// removeListenerLocked stops delivering mb's messages to c.
func (s *Server) removeListenerLocked(mb *mailbox, c *conn, now time.Time) {
	if i := slices.Index(mb.listeners, c); i >= 0 {
		mb.listeners = slices.Delete(mb.listeners, i, i+1)
		mb.updated = now
	}
}

// closeLocked closes side's view of mb with mood; the mailbox is deleted
// once every side that opened it has closed.
func (s *Server) closeLocked(mb *mailbox, side, mood string, c *conn, now time.Time) {
	s.removeListenerLocked(mb, c, now)
	i := slices.IndexFunc(mb.sides, func(x mbSide) bool { return x.Side == side })
	if i < 0 {
		return
	}
	if mb.sides[i].Opened {
		s.countMood(mood)
	}
	mb.sides[i].Opened, mb.sides[i].Mood = false, mood
	if slices.ContainsFunc(mb.sides, func(x mbSide) bool { return x.Opened }) {
		s.putMailboxLocked(mb)
		return
	}
	if len(mb.sides) == 2 {
		s.stats.rendezvous.Add(1)
	}
	s.stats.closed.Add(1)
	s.deleteMailboxLocked(mb)
}

func (s *Server) countMood(mood string) {
	switch mood {
	case "happy":
		s.stats.happy.Add(1)
	case "lonely":
		s.stats.lonely.Add(1)
	case "scary":
		s.stats.scary.Add(1)
	case "errory":
		s.stats.errory.Add(1)
	default:
		s.stats.otherMood.Add(1)
	}
}

// deleteMailboxLocked forgets mb, its messages and the nameplate that
// names it. Its listeners stay connected; they just hear nothing more.
func (s *Server) deleteMailboxLocked(mb *mailbox) {
	a := mb.app
	if a.mailboxes[mb.id] != mb {
		return
	}
	if np := a.nameplates[mb.nameplate]; np != nil && np.mailbox == mb {
		s.deleteNameplateLocked(a, np)
	}
	for _, l := range mb.listeners {
		l.forget(mb)
	}
	delete(a.mailboxes, mb.id)
	s.nMailboxes--
	s.nMessages -= len(mb.msgs)
	s.mbLimit.Release(mb.owner)
	s.j.add(record{op: opDelMailbox, app: a.id, key: mb.id})
	s.dropAppLocked(a)
}

// pruneLocked deletes the mailboxes that have had no listener for
// PruneAfter, with their nameplates, and returns how many.
func (s *Server) pruneLocked(now time.Time) int {
	n := 0
	for _, a := range s.apps {
		for _, mb := range a.mailboxes {
			if len(mb.listeners) == 0 && now.Sub(mb.updated) >= s.cfg.PruneAfter {
				s.deleteMailboxLocked(mb)
				n++
			}
		}
		// A nameplate whose mailbox is gone (closed without release).
		for _, np := range a.nameplates {
			if a.mailboxes[np.mailbox.id] != np.mailbox {
				s.deleteNameplateLocked(a, np)
				n++
			}
		}
	}
	s.stats.pruned.Add(uint64(n))
	return n
}

func (s *Server) putNameplateLocked(a *app, np *nameplate) {
	sides, _ := json.Marshal(np.sides)
	s.j.add(record{op: opPutNameplate, app: a.id, key: np.name, ref: np.mailbox.id, data: sides})
}

func (s *Server) putMailboxLocked(mb *mailbox) {
	sides, _ := json.Marshal(mb.sides)
	owner := ""
	if mb.owner.IsValid() {
		owner = mb.owner.String()
	}
	s.j.add(record{op: opPutMailbox, app: mb.app.id, key: mb.id, ref: mb.nameplate, owner: owner, data: sides})
}
