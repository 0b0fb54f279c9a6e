package userstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// IsPostgres reports whether a turn.user_db value names a PostgreSQL
// database (a postgres:// or postgresql:// URL) rather than an SQLite file.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// pgSchemaVersion is the version of the schema below, kept in
// icebreaker_schema.
const pgSchemaVersion = 1

// pgChannel is the NOTIFY channel on which every change to a user is
// announced, with the payload realm + "\n" + username.
const pgChannel = "icebreaker_users"

// pgLockID is the advisory lock under which nodes create or migrate the
// schema, so that two nodes starting together do not race.
const pgLockID = 0x1cebeaca

const pgSchemaV1 = `
CREATE TABLE icebreaker_users (
	realm      text        NOT NULL,
	username   text        NOT NULL,
	key_md5    bytea       NOT NULL,
	key_sha256 bytea,
	userhash   bytea       NOT NULL,
	created    timestamptz NOT NULL DEFAULT now(),
	updated    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (realm, username)
);
CREATE INDEX icebreaker_users_by_userhash ON icebreaker_users (userhash, realm);
CREATE FUNCTION icebreaker_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify('icebreaker_users', OLD.realm || chr(10) || OLD.username);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		PERFORM pg_notify('icebreaker_users', NEW.realm || chr(10) || NEW.username);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER icebreaker_users_notify AFTER INSERT OR UPDATE OR DELETE ON icebreaker_users
	FOR EACH ROW EXECUTE FUNCTION icebreaker_users_notify();
`

// ErrStoreDown is wrapped by lookups that miss the cache of a PostgreSQL
// store while it is unreachable.
var ErrStoreDown = errors.New("the PostgreSQL user store is unreachable")

// pgQueryTimeout bounds one lookup that misses the cache.
const pgQueryTimeout = 3 * time.Second

// pgMaxCached bounds the cache; when it is full it is emptied, so that
// lookups of random unknown names cannot grow it without limit.
const pgMaxCached = 100_000

// PGStats are a PG's counters since it was opened.
type PGStats struct {
	CacheHits   uint64 // lookups answered from the cache
	CacheMisses uint64 // lookups that asked the database
	LookupErrs  uint64 // lookups that failed because the database did
	Notified    uint64 // change notifications received
	Outages     uint64 // times the notification connection was lost or could not be made
	Connected   bool   // the notification connection is up, so results are cached
}

type nameKey struct{ realm, username string }

type hashKey struct {
	realm    string
	userhash [32]byte
}

// cached is what the cache knows of a user: its keys, or that it does not
// exist (known false).
type cached struct {
	known       bool
	md5, sha256 []byte
}

// PG is the user store in a PostgreSQL database shared by several servers.
// Lookups are answered from an in-memory cache, which the database's
// LISTEN/NOTIFY invalidates: a trigger announces every insert, update and
// delete of a user, whoever makes it, so a user added through one node is
// in force on every node at once. Unknown users are cached too.
//
// Results are cached only while the notification connection is up; when
// it comes back after an outage the whole cache is dropped, since
// notifications may have been missed. While PostgreSQL is down (from the
// loss of that connection until it is back), users in the cache keep
// working, a lookup that misses the cache fails at once with an error
// wrapping ErrStoreDown (a 500 to the client, not a 401), the outage is
// logged once and counted (Stats), and the store reconnects with backoff.
// A lookup that misses the cache while the store is up waits for one
// query, at most 3 s.
//
// PG implements turnauth.KeyLookup, turnauth.UserhashLookup and Admin. It
// is safe for concurrent use; the zero value is not usable: call
// OpenPostgres.
type PG struct {
	pool *pgxpool.Pool
	dsn  string // redacted
	log  *slog.Logger

	mu        sync.Mutex // guards the fields below
	byName    map[nameKey]cached
	byHash    map[hashKey]string // "" = no such user
	gen       uint64             // bumped by every invalidation
	listening bool
	closed    bool

	hits, misses, lookupErrs, outages, notified atomic.Uint64
	// down is set while an outage lasts (from a lost or failed LISTEN
	// connection until the next LISTEN): lookups that miss the cache
	// then fail at once instead of waiting on the database.
	down atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
}

// OpenPostgres connects to the database at dsn (a postgres:// URL), creates
// or migrates the schema, and starts the goroutine that listens for
// changes, which Close stops. It fails when the database cannot be reached
// or its schema is newer than this program's. logger receives outages and
// recoveries; nil is silent.
func OpenPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*PG, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	red := redactDSN(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("userstore: postgres %s: %w", red, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("userstore: postgres %s: %w", red, err)
	}
	if err := pgMigrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("userstore: postgres %s: %w", red, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	p := &PG{
		pool: pool, dsn: red, log: logger,
		byName: make(map[nameKey]cached), byHash: make(map[hashKey]string),
		cancel: cancel, done: make(chan struct{}),
	}
	go p.listen(lctx)
	return p, nil
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// pgMigrate creates or migrates the schema under an advisory lock.
func pgMigrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pgLockID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS icebreaker_schema (version integer NOT NULL)"); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
		var version int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM icebreaker_schema").Scan(&version); err != nil {
			return err
		}
		if version > pgSchemaVersion {
			return fmt.Errorf("database schema version %d is newer than this program's %d", version, pgSchemaVersion)
		}
		if version < 1 {
			if _, err := tx.Exec(ctx, pgSchemaV1); err != nil {
				return fmt.Errorf("creating schema: %w", err)
			}
		}
		if version < pgSchemaVersion {
			if _, err := tx.Exec(ctx, "DELETE FROM icebreaker_schema"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO icebreaker_schema (version) VALUES ($1)", pgSchemaVersion); err != nil {
				return err
			}
		}
		return nil
	})
}

// Path returns the database URL without its password.
func (p *PG) Path() string { return p.dsn }

// Stats returns the store's counters.
func (p *PG) Stats() PGStats {
	p.mu.Lock()
	connected := p.listening
	p.mu.Unlock()
	return PGStats{
		CacheHits: p.hits.Load(), CacheMisses: p.misses.Load(),
		LookupErrs: p.lookupErrs.Load(), Notified: p.notified.Load(), Outages: p.outages.Load(), Connected: connected,
	}
}

// Close stops the listener and closes the connections. It may be called
// more than once.
func (p *PG) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
	p.pool.Close()
	return nil
}

func (p *PG) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// listen keeps a connection that LISTENs for changes, reconnecting with
// backoff, until ctx ends.
func (p *PG) listen(ctx context.Context) {
	defer close(p.done)
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	down := false
	for {
		up, err := p.listenOnce(ctx)
		p.setListening(false)
		if ctx.Err() != nil {
			return
		}
		if up {
			backoff, down = minBackoff, false
		}
		if !down {
			down = true
			p.down.Store(true)
			p.outages.Add(1)
			p.log.Error("PostgreSQL user store unreachable: cached users keep working, others fail until it is back", "db", p.dsn, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce connects, LISTENs, drops the cache (notifications may have
// been missed) and applies notifications until the connection fails. up
// says whether it got as far as listening.
func (p *PG) listenOnce(ctx context.Context) (up bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		return false, err
	}
	p.mu.Lock()
	p.invalidateAllLocked()
	p.listening = true
	p.mu.Unlock()
	if p.down.Swap(false) {
		// The pool's idle connections may be dead from the outage.
		p.pool.Reset()
		p.log.Info("PostgreSQL user store reachable again", "db", p.dsn)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		p.invalidate(n.Payload)
		p.notified.Add(1)
	}
}

func (p *PG) setListening(on bool) {
	p.mu.Lock()
	p.listening = on
	p.mu.Unlock()
}

func (p *PG) invalidateAllLocked() {
	p.gen++
	clear(p.byName)
	clear(p.byHash)
}

// invalidate drops what the cache knows of the user named by a
// notification's payload.
func (p *PG) invalidate(payload string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := strings.LastIndexByte(payload, '\n')
	if i < 0 {
		p.invalidateAllLocked()
		return
	}
	p.invalidateLocked(payload[:i], payload[i+1:])
}

func (p *PG) invalidateLocked(realm, username string) {
	p.gen++
	delete(p.byName, nameKey{realm, username})
	if h, err := stun.Userhash(username, realm); err == nil {
		delete(p.byHash, hashKey{realm, h})
	} else {
		clear(p.byHash)
	}
}

// lookup returns the cached entry of a user, or the generation to hand to
// store after asking the database.
func (p *PG) lookup(k nameKey) (c cached, hit bool, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, hit = p.byName[k]
	return c, hit, p.gen
}

func (p *PG) store(k nameKey, c cached, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.listening || p.gen != gen {
		return
	}
	if len(p.byName) >= pgMaxCached {
		clear(p.byName)
	}
	p.byName[k] = c
}

// Key implements turnauth.KeyLookup. A user imported from coturn has no
// SHA-256 key and is unknown for that algorithm.
func (p *PG) Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if alg != stun.PasswordMD5 && alg != stun.PasswordSHA256 {
		return nil, fmt.Errorf("userstore: unsupported password algorithm %s", alg)
	}
	k := nameKey{realm, username}
	c, hit, gen := p.lookup(k)
	if hit {
		p.hits.Add(1)
	} else {
		p.misses.Add(1)
		if p.down.Load() {
			p.lookupErrs.Add(1)
			return nil, fmt.Errorf("userstore: postgres: looking up %q: %w", username, ErrStoreDown)
		}
		qctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
		defer cancel()
		err := p.pool.QueryRow(qctx, `SELECT key_md5, key_sha256 FROM icebreaker_users
			WHERE realm = $1 AND username = $2`, realm, username).Scan(&c.md5, &c.sha256)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			c = cached{}
		case err != nil:
			p.lookupErrs.Add(1)
			return nil, fmt.Errorf("userstore: postgres: looking up %q: %w", username, err)
		default:
			c.known = true
		}
		p.store(k, c, gen)
	}
	var key []byte
	if c.known {
		key = c.md5
		if alg == stun.PasswordSHA256 {
			key = c.sha256
		}
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: %q in realm %q", ErrNoUser, username, realm)
	}
	return key, nil
}

// ByUserhash implements turnauth.UserhashLookup.
func (p *PG) ByUserhash(ctx context.Context, userhash [32]byte, realm string) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	k := hashKey{realm, userhash}
	p.mu.Lock()
	name, hit := p.byHash[k]
	gen := p.gen
	p.mu.Unlock()
	if hit {
		p.hits.Add(1)
	} else {
		p.misses.Add(1)
		if p.down.Load() {
			p.lookupErrs.Add(1)
			return "", fmt.Errorf("userstore: postgres: looking up USERHASH: %w", ErrStoreDown)
		}
		qctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
		defer cancel()
		err := p.pool.QueryRow(qctx, `SELECT username FROM icebreaker_users WHERE userhash = $1 AND realm = $2
			ORDER BY username LIMIT 1`, userhash[:], realm).Scan(&name)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			p.lookupErrs.Add(1)
			return "", fmt.Errorf("userstore: postgres: looking up USERHASH: %w", err)
		}
		p.mu.Lock()
		if p.listening && p.gen == gen {
			if len(p.byHash) >= pgMaxCached {
				clear(p.byHash)
			}
			p.byHash[k] = name
		}
		p.mu.Unlock()
	}
	if name == "" {
		return "", fmt.Errorf("%w: no user with that USERHASH in realm %q", ErrNoUser, realm)
	}
	return name, nil
}

// written drops a user this process changed from its own cache at once,
// before the notification arrives.
func (p *PG) written(realm, username string) {
	p.mu.Lock()
	p.invalidateLocked(realm, username)
	p.mu.Unlock()
}

// keysFor derives a user's keys on an open store.
func (p *PG) keysFor(realm, username, password string) (keys, error) {
	if err := p.check(); err != nil {
		return keys{}, err
	}
	return deriveKeys(realm, username, password)
}

// Add implements Admin.
func (p *PG) Add(ctx context.Context, realm, username, password string) error {
	k, err := p.keysFor(realm, username, password)
	if err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `INSERT INTO icebreaker_users (realm, username, key_md5, key_sha256, userhash)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, realm, username, k.md5, k.sha256, k.userhash[:])
	if err != nil {
		return fmt.Errorf("userstore: adding %q: %w", username, err)
	}
	p.written(realm, username)
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q in realm %q", ErrUserExists, username, realm)
	}
	return nil
}

// SetPassword implements Admin.
func (p *PG) SetPassword(ctx context.Context, realm, username, password string) error {
	k, err := p.keysFor(realm, username, password)
	if err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `UPDATE icebreaker_users SET key_md5 = $1, key_sha256 = $2, userhash = $3, updated = now()
		WHERE realm = $4 AND username = $5`, k.md5, k.sha256, k.userhash[:], realm, username)
	return p.affectedOne(tag.RowsAffected(), err, "changing password of", realm, username)
}

// Delete implements Admin.
func (p *PG) Delete(ctx context.Context, realm, username string) error {
	if err := p.check(); err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM icebreaker_users WHERE realm = $1 AND username = $2`, realm, username)
	return p.affectedOne(tag.RowsAffected(), err, "deleting", realm, username)
}

func (p *PG) affectedOne(n int64, err error, what, realm, username string) error {
	if err != nil {
		return fmt.Errorf("userstore: %s %q: %w", what, username, err)
	}
	p.written(realm, username)
	if n == 0 {
		return fmt.Errorf("%w: %q in realm %q", ErrNoUser, username, realm)
	}
	return nil
}

// ImportMD5 implements Admin.
func (p *PG) ImportMD5(ctx context.Context, realm, username string, keyMD5 []byte) error {
	if err := p.check(); err != nil {
		return err
	}
	uh, err := importChecks(realm, username, keyMD5)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO icebreaker_users (realm, username, key_md5, key_sha256, userhash)
		VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (realm, username) DO UPDATE
		SET key_md5 = EXCLUDED.key_md5, key_sha256 = NULL, userhash = EXCLUDED.userhash, updated = now()`,
		realm, username, keyMD5, uh[:])
	if err != nil {
		return fmt.Errorf("userstore: importing %q: %w", username, err)
	}
	p.written(realm, username)
	return nil
}

// List implements Admin.
func (p *PG) List(ctx context.Context, realm string) ([]User, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, `SELECT realm, username, created, updated FROM icebreaker_users
		WHERE $1 = '' OR realm = $1 ORDER BY realm, username`, realm)
	if err != nil {
		return nil, fmt.Errorf("userstore: listing users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.Realm, &u.Username, &u.Created, &u.Updated)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("userstore: listing users: %w", err)
	}
	return users, nil
}

var _ turnauth.UserhashLookup = (*PG)(nil)
