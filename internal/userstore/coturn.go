package userstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CoturnUser is one row of coturn's long-term user table, turnusers_lt
// (realm, name, hmackey), with the key decoded.
type CoturnUser struct {
	Realm, Username string
	KeyMD5          []byte // MD5(username:realm:password), RFC 8489, Section 9.2.2
}

// CoturnSkipped is a row of turnusers_lt that cannot be imported, and why.
type CoturnSkipped struct {
	Realm, Username, Reason string
}

// ParseCoturnKey decodes coturn's hmackey column: the hex MD5 long-term
// key, 32 hex digits. coturn run with a SHA-256 algorithm keeps a longer
// key that is not the MD5 one and is refused.
func ParseCoturnKey(hmackey string) ([]byte, error) {
	s := strings.TrimSpace(hmackey) // char(128) may be space-padded
	if len(s) != 2*16 {
		return nil, fmt.Errorf("hmackey of %d hex digits is not an MD5 key (32 digits)", len(s))
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("hmackey is not hex: %w", err)
	}
	return k, nil
}

// ReadCoturn reads coturn's turnusers_lt table from db: a postgres:// URL
// or the path of coturn's SQLite database (turnadmin -b, turnserver
// --db). It returns the importable users and the rows it skipped.
func ReadCoturn(ctx context.Context, db string) ([]CoturnUser, []CoturnSkipped, error) {
	var rows [][3]string
	var err error
	if IsPostgres(db) {
		rows, err = readCoturnPostgres(ctx, db)
	} else {
		rows, err = readCoturnSQLite(ctx, db)
	}
	if err != nil {
		return nil, nil, err
	}
	var users []CoturnUser
	var skipped []CoturnSkipped
	for _, r := range rows {
		realm, name := r[0], r[1]
		key, err := ParseCoturnKey(r[2])
		if err == nil {
			_, err = importChecks(realm, name, key)
		}
		if err != nil {
			skipped = append(skipped, CoturnSkipped{realm, name, err.Error()})
			continue
		}
		users = append(users, CoturnUser{realm, name, key})
	}
	return users, skipped, nil
}

const coturnQuery = `SELECT coalesce(realm, ''), coalesce(name, ''), coalesce(hmackey, '') FROM turnusers_lt ORDER BY realm, name`

func readCoturnSQLite(ctx context.Context, path string) ([][3]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("coturn database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", path, err)
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, coturnQuery)
	if err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", path, err)
	}
	defer rs.Close()
	var out [][3]string
	for rs.Next() {
		var r [3]string
		if err := rs.Scan(&r[0], &r[1], &r[2]); err != nil {
			return nil, fmt.Errorf("coturn database %s: %w", path, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", path, err)
	}
	return out, nil
}

func readCoturnPostgres(ctx context.Context, dsn string) ([][3]string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", redactDSN(dsn), err)
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(ctx, coturnQuery)
	if err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", redactDSN(dsn), err)
	}
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) ([3]string, error) {
		var v [3]string
		err := r.Scan(&v[0], &v[1], &v[2])
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("coturn database %s: %w", redactDSN(dsn), err)
	}
	return out, nil
}

// OpenAdmin opens the store named by db for `icebreaker user`: a
// postgres:// URL (PostgreSQL, schema created or migrated) or an SQLite
// file path (created if needed).
func OpenAdmin(ctx context.Context, db string) (Admin, error) {
	if IsPostgres(db) {
		return OpenPostgres(ctx, db, nil)
	}
	return Open(db)
}
