// Package userstore is icebreaker's embedded TURN user store: an SQLite
// database (through modernc.org/sqlite, pure Go, no cgo) that keeps, per
// realm and username, the long-term credential keys of RFC 8489,
// Section 9.2.2 (https://www.rfc-editor.org/rfc/rfc8489) for the MD5 and
// SHA-256 password algorithms, and the USERHASH of Section 14.4. It never
// stores a password: Add and SetPassword derive the keys and drop it.
//
// Because the keys include the realm, a user belongs to one realm: a server
// whose realm changes needs its users added again in the new realm.
//
// A *Store implements turnauth.KeyLookup and turnauth.UserhashLookup, so a
// TURN server can use it directly. The database runs in WAL mode with a
// busy timeout, so `icebreaker user` can change users while a server reads
// them; several servers on one host can share the file.
package userstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrUserExists is returned by Add for a user that is already in the realm.
var ErrUserExists = errors.New("userstore: user already exists")

// ErrNoUser is returned (wrapped) for a user that is not in the realm. It
// is turnauth.ErrUnknownUser, so that a Store is a turnauth.KeyLookup.
var ErrNoUser = turnauth.ErrUnknownUser

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("userstore: store is closed")

// busyTimeout is how long a statement waits for another process's write
// lock before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS users (
	realm      TEXT    NOT NULL,
	username   TEXT    NOT NULL,
	key_md5    BLOB    NOT NULL,
	key_sha256 BLOB    NOT NULL,
	userhash   BLOB    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	PRIMARY KEY (realm, username)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_by_userhash ON users (userhash);
`

// User is one entry of List.
type User struct {
	Realm    string
	Username string
	Created  time.Time
	Updated  time.Time
}

// Store is an open user database. It is safe for concurrent use; the zero
// value is not usable: call Open.
type Store struct {
	db   *sql.DB
	path string

	mu     sync.Mutex
	closed bool
}

// DefaultPath returns where the user database lives when no path is given:
// $ICEBREAKER_DATA_DIR/users.db if that variable is set; else
// /var/lib/icebreaker/users.db for root; else
// $XDG_DATA_HOME/icebreaker/users.db, with XDG_DATA_HOME defaulting to
// ~/.local/share.
func DefaultPath() (string, error) {
	if d := os.Getenv("ICEBREAKER_DATA_DIR"); d != "" {
		return filepath.Join(d, "users.db"), nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/icebreaker/users.db", nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "icebreaker", "users.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("userstore: no default database path: %w (set ICEBREAKER_DATA_DIR)", err)
	}
	return filepath.Join(home, ".local", "share", "icebreaker", "users.db"), nil
}

// Open opens the database at path, creating it, its directory (mode 0700)
// and its schema as needed. A new database file is created with mode 0600:
// the keys in it are password equivalents for this realm.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("userstore: empty database path")
	}
	db, err := OpenSQLite(path)
	if err != nil {
		return nil, fmt.Errorf("userstore: %w", err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("userstore: %s: %w", path, err)
	}
	return s, nil
}

// OpenSQLite opens the SQLite database at path the way the daemon's stores
// use it (the user store, the rendezvous): creating it with mode 0600 and
// its directory with 0700, in WAL mode with synchronous=NORMAL, a busy
// timeout, and transactions that take the write lock when they begin.
func OpenSQLite(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Create the file ourselves so that it gets 0600; SQLite gives its
	// -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	dsn := "file:" + escapePath(abs) +
		fmt.Sprintf("?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// escapePath makes path safe inside a file: URI: '?' and '#' would start
// the query or fragment, '%' an escape.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

func (s *Store) init() error {
	ctx := context.Background()
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("database schema version %d is newer than this program's %d", version, schemaVersion)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("creating schema: %w", err)
	}
	if version < schemaVersion {
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. It may be called more than once; later calls
// return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

func (s *Store) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// keys derives what the store keeps for a user.
type keys struct {
	md5, sha256 []byte
	userhash    [32]byte
}

func deriveKeys(realm, username, password string) (keys, error) {
	var k keys
	if err := CheckUsername(username); err != nil {
		return k, err
	}
	if realm == "" {
		return k, errors.New("userstore: empty realm")
	}
	if password == "" {
		return k, errors.New("userstore: empty password")
	}
	var err error
	if k.md5, err = stun.LongTermKey(stun.PasswordMD5, username, realm, password); err != nil {
		return k, fmt.Errorf("userstore: %w", err)
	}
	if k.sha256, err = stun.LongTermKey(stun.PasswordSHA256, username, realm, password); err != nil {
		return k, fmt.Errorf("userstore: %w", err)
	}
	if k.userhash, err = stun.Userhash(username, realm); err != nil {
		return k, fmt.Errorf("userstore: %w", err)
	}
	return k, nil
}

// CheckUsername reports whether name can be a TURN username: not empty,
// UTF-8, at most stun.MaxUsername bytes, no control characters.
func CheckUsername(name string) error {
	switch {
	case name == "":
		return errors.New("userstore: empty username")
	case len(name) > stun.MaxUsername:
		return fmt.Errorf("userstore: username of %d bytes, more than %d", len(name), stun.MaxUsername)
	case !utf8.ValidString(name):
		return errors.New("userstore: username is not UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("userstore: username contains a control character")
	}
	return nil
}

// Add adds a user to realm with password. It returns an error wrapping
// ErrUserExists if the user is already there.
func (s *Store) Add(ctx context.Context, realm, username, password string) error {
	if err := s.check(); err != nil {
		return err
	}
	k, err := deriveKeys(realm, username, password)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	r, err := s.db.ExecContext(ctx, `INSERT INTO users
		(realm, username, key_md5, key_sha256, userhash, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		realm, username, k.md5, k.sha256, k.userhash[:], now, now)
	if err != nil {
		return fmt.Errorf("userstore: adding %q: %w", username, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("userstore: adding %q: %w", username, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %q in realm %q", ErrUserExists, username, realm)
	}
	return nil
}

// SetPassword replaces the keys of an existing user. It returns an error
// wrapping ErrNoUser if there is no such user.
func (s *Store) SetPassword(ctx context.Context, realm, username, password string) error {
	if err := s.check(); err != nil {
		return err
	}
	k, err := deriveKeys(realm, username, password)
	if err != nil {
		return err
	}
	r, err := s.db.ExecContext(ctx, `UPDATE users SET key_md5 = ?, key_sha256 = ?, userhash = ?, updated = ?
		WHERE realm = ? AND username = ?`,
		k.md5, k.sha256, k.userhash[:], time.Now().Unix(), realm, username)
	return affectedOne(r, err, "changing password of", realm, username)
}

// Delete removes a user. It returns an error wrapping ErrNoUser if there is
// no such user.
func (s *Store) Delete(ctx context.Context, realm, username string) error {
	if err := s.check(); err != nil {
		return err
	}
	r, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE realm = ? AND username = ?`, realm, username)
	return affectedOne(r, err, "deleting", realm, username)
}

func affectedOne(r sql.Result, err error, what, realm, username string) error {
	if err != nil {
		return fmt.Errorf("userstore: %s %q: %w", what, username, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("userstore: %s %q: %w", what, username, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q in realm %q", ErrNoUser, username, realm)
	}
	return nil
}

// ImportMD5 implements Admin. The SHA-256 key is stored empty, which Key
// treats as no key.
func (s *Store) ImportMD5(ctx context.Context, realm, username string, keyMD5 []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	uh, err := importChecks(realm, username, keyMD5)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	_, err = s.db.ExecContext(ctx, `INSERT INTO users
		(realm, username, key_md5, key_sha256, userhash, created, updated)
		VALUES (?, ?, ?, x'', ?, ?, ?) ON CONFLICT (realm, username) DO UPDATE
		SET key_md5 = excluded.key_md5, key_sha256 = x'', userhash = excluded.userhash, updated = excluded.updated`,
		realm, username, keyMD5, uh[:], now, now)
	if err != nil {
		return fmt.Errorf("userstore: importing %q: %w", username, err)
	}
	return nil
}

// List returns the users of realm, or of every realm when realm is "",
// sorted by realm and username.
func (s *Store) List(ctx context.Context, realm string) ([]User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT realm, username, created, updated FROM users
		WHERE ?1 = '' OR realm = ?1 ORDER BY realm, username`, realm)
	if err != nil {
		return nil, fmt.Errorf("userstore: listing users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		var u User
		var created, updated int64
		if err := rows.Scan(&u.Realm, &u.Username, &created, &updated); err != nil {
			return nil, fmt.Errorf("userstore: listing users: %w", err)
		}
		u.Created, u.Updated = time.Unix(created, 0), time.Unix(updated, 0)
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("userstore: listing users: %w", err)
	}
	return users, nil
}

// Key implements turnauth.KeyLookup: it returns the stored key of username
// in realm for alg, or an error wrapping ErrNoUser (also for SHA-256 and a
// user imported with ImportMD5).
func (s *Store) Key(ctx context.Context, username, realm string, alg stun.PasswordAlgorithm) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var q string
	switch alg {
	case stun.PasswordMD5:
		q = `SELECT key_md5 FROM users WHERE realm = ? AND username = ?`
	case stun.PasswordSHA256:
		q = `SELECT key_sha256 FROM users WHERE realm = ? AND username = ?`
	default:
		return nil, fmt.Errorf("userstore: unsupported password algorithm %s", alg)
	}
	var key []byte
	err := s.db.QueryRowContext(ctx, q, realm, username).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) || err == nil && len(key) == 0 {
		// An empty key: a user imported from coturn has no SHA-256 key.
		return nil, fmt.Errorf("%w: %q in realm %q", ErrNoUser, username, realm)
	}
	if err != nil {
		return nil, fmt.Errorf("userstore: looking up %q: %w", username, err)
	}
	return key, nil
}

// ByUserhash implements turnauth.UserhashLookup: it returns the username
// whose USERHASH in realm is userhash, or an error wrapping ErrNoUser.
func (s *Store) ByUserhash(ctx context.Context, userhash [32]byte, realm string) (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT username FROM users WHERE userhash = ? AND realm = ?
		ORDER BY username LIMIT 1`, userhash[:], realm).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: no user with that USERHASH in realm %q", ErrNoUser, realm)
	}
	if err != nil {
		return "", fmt.Errorf("userstore: looking up USERHASH: %w", err)
	}
	return name, nil
}
