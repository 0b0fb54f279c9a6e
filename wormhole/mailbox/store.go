package mailbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/userstore"
)

// The database: memory is the truth, the database a write-behind copy.
// Every change is a record in the journal; one writer goroutine commits
// the pending records every FlushInterval in a single transaction (WAL,
// synchronous=NORMAL, opened as the user store opens its own), so a burst of rendezvous costs one fsync-free
// commit, not one per message. A graceful stop writes everything; a crash
// loses at most the last FlushInterval.

type op uint8

const (
	opPutNameplate op = iota + 1
	opDelNameplate
	opPutMailbox
	opDelMailbox
	opMessage
)

// record is one change to write.
type record struct {
	op       op
	app, key string // key: nameplate name or mailbox ID
	ref      string // nameplate: its mailbox; mailbox: its nameplate
	owner    string // mailbox: the creator's address
	seq      int64  // message: its number in the mailbox
	data     []byte // nameplate, mailbox: sides as JSON; message: the wire frame
}

// journal holds the records not yet written. A nil *journal (no database)
// drops them. Its methods are safe for concurrent use.
type journal struct {
	db *sql.DB

	mu      sync.Mutex
	pending []record      // guarded by mu
	flushed chan struct{} // guarded by mu: closed (and replaced) after each write
	failed  uint64        // guarded by mu: transactions that failed
}

const schema = `
CREATE TABLE IF NOT EXISTS nameplates (app TEXT NOT NULL, name TEXT NOT NULL, mailbox TEXT NOT NULL, sides TEXT NOT NULL, PRIMARY KEY (app, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes (app TEXT NOT NULL, id TEXT NOT NULL, nameplate TEXT NOT NULL, owner TEXT NOT NULL, sides TEXT NOT NULL, PRIMARY KEY (app, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (app TEXT NOT NULL, mailbox TEXT NOT NULL, seq INTEGER NOT NULL, wire BLOB NOT NULL, PRIMARY KEY (app, mailbox, seq)) WITHOUT ROWID;
`

// openJournal opens (creating) the database at path.
func openJournal(path string) (*journal, error) {
	db, err := userstore.OpenSQLite(path)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("mailbox: %s: %w", path, err)
	}
	return &journal{db: db, flushed: make(chan struct{})}, nil
}

func (j *journal) add(r record) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.pending = append(j.pending, r)
	j.mu.Unlock()
}

// waitRoom blocks while the backlog is above maxPendingWrites, so that a
// database slower than the clients slows the clients rather than growing
// the backlog.
func (j *journal) waitRoom(ctx context.Context) error {
	if j == nil {
		return nil
	}
	for {
		j.mu.Lock()
		n, ch := len(j.pending), j.flushed
		j.mu.Unlock()
		if n < maxPendingWrites {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush writes the pending records in one transaction. Records of a
// failed transaction are dropped (and counted): memory stays the truth.
func (j *journal) flush() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	j.mu.Unlock()
	var err error
	if len(batch) > 0 {
		err = j.write(batch)
	}
	j.mu.Lock()
	if err != nil {
		j.failed++
	}
	close(j.flushed)
	j.flushed = make(chan struct{})
	j.mu.Unlock()
	return err
}

func (j *journal) write(batch []record) error {
	tx, err := j.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range batch {
		switch r.op {
		case opPutNameplate:
			_, err = tx.Exec("INSERT OR REPLACE INTO nameplates (app, name, mailbox, sides) VALUES (?, ?, ?, ?)", r.app, r.key, r.ref, string(r.data))
		case opDelNameplate:
			_, err = tx.Exec("DELETE FROM nameplates WHERE app = ? AND name = ?", r.app, r.key)
		case opPutMailbox:
			_, err = tx.Exec("INSERT OR REPLACE INTO mailboxes (app, id, nameplate, owner, sides) VALUES (?, ?, ?, ?, ?)", r.app, r.key, r.ref, r.owner, string(r.data))
		case opDelMailbox:
			if _, err = tx.Exec("DELETE FROM mailboxes WHERE app = ? AND id = ?", r.app, r.key); err == nil {
				_, err = tx.Exec("DELETE FROM messages WHERE app = ? AND mailbox = ?", r.app, r.key)
			}
		case opMessage:
			_, err = tx.Exec("INSERT OR REPLACE INTO messages (app, mailbox, seq, wire) VALUES (?, ?, ?, ?)", r.app, r.key, r.seq, r.data)
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (j *journal) failures() uint64 {
	if j == nil {
		return 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

func (j *journal) close() error {
	if j == nil {
		return nil
	}
	return j.db.Close()
}

// load reads the stored state into s (before it serves). Mailboxes count
// against their creators' addresses again, and their prune clock starts
// now: their clients may be reconnecting.
func (s *Server) load(now time.Time) error {
	ctx := context.Background()
	db := s.j.db
	rows, err := db.QueryContext(ctx, "SELECT app, id, nameplate, owner, sides FROM mailboxes")
	if err != nil {
		return err
	}
	for rows.Next() {
		var appID, id, np, owner, sides string
		if err := rows.Scan(&appID, &id, &np, &owner, &sides); err != nil {
			rows.Close()
			return err
		}
		a := s.appLocked(appID)
		mb := &mailbox{id: id, app: a, nameplate: np, updated: now}
		mb.owner, _ = netip.ParseAddr(owner)
		if err := json.Unmarshal([]byte(sides), &mb.sides); err != nil {
			rows.Close()
			return fmt.Errorf("mailbox %s: %w", id, err)
		}
		_ = s.mbLimit.Acquire(mb.owner) // over the limit now: still kept, and still released later
		a.mailboxes[id] = mb
		s.nMailboxes++
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	if rows, err = db.QueryContext(ctx, "SELECT app, name, mailbox, sides FROM nameplates"); err != nil {
		return err
	}
	for rows.Next() {
		var appID, name, mbID, sides string
		if err := rows.Scan(&appID, &name, &mbID, &sides); err != nil {
			rows.Close()
			return err
		}
		a := s.appLocked(appID)
		np := &nameplate{name: name, mailbox: a.mailboxes[mbID]}
		if np.mailbox == nil { // written before its mailbox was deleted: gone
			s.j.add(record{op: opDelNameplate, app: appID, key: name})
			continue
		}
		if err := json.Unmarshal([]byte(sides), &np.sides); err != nil {
			rows.Close()
			return fmt.Errorf("nameplate %s: %w", name, err)
		}
		a.nameplates[name] = np
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	if rows, err = db.QueryContext(ctx, "SELECT app, mailbox, seq, wire FROM messages ORDER BY app, mailbox, seq"); err != nil {
		return err
	}
	for rows.Next() {
		var appID, mbID string
		var seq int64
		var wire []byte
		if err := rows.Scan(&appID, &mbID, &seq, &wire); err != nil {
			rows.Close()
			return err
		}
		var m messageMsg
		a := s.apps[appID]
		if a == nil || a.mailboxes[mbID] == nil || json.Unmarshal(wire, &m) != nil {
			continue // an orphan or a damaged row: nobody can use it
		}
		mb := a.mailboxes[mbID]
		mb.msgs = append(mb.msgs, message{side: m.Side, wire: wire, size: len(m.Body)})
		mb.bytes += len(m.Body)
		mb.seq = max(mb.seq, seq)
		s.nMessages++
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	for id, a := range s.apps {
		if len(a.mailboxes) == 0 && len(a.nameplates) == 0 {
			delete(s.apps, id)
		}
	}
	return nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	return errors.Join(err, rows.Close())
}
