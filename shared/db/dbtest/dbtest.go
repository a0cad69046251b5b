// Package dbtest gives tests a fresh, migrated database on SQLite and on
// PostgreSQL, so every product's storage code is tested against both.
//
// The PostgreSQL database comes from $ATRIUM_TEST_POSTGRES_DSN (start one with
// scripts/test-postgres.sh). Each test gets its own schema in it, dropped when
// the test ends, so tests can run in parallel against one server. Its
// connections use a non-UTC time zone with a half-hour offset
// (America/St_Johns), so code that relies on the server's zone fails here
// rather than in production.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atrium-suite/atrium/shared/db"
)

// EnvPostgresDSN names the variable holding the PostgreSQL test database.
const EnvPostgresDSN = "ATRIUM_TEST_POSTGRES_DSN"

// TestTimeZone is the session time zone of PostgreSQL test connections.
const TestTimeZone = "America/St_Johns"

// ForEachDialect runs fn as subtests "sqlite" and "postgres", each with a
// function that opens a fresh, empty database with the given migrations
// applied. The postgres subtest is skipped (or fails on CI) when no test
// server is configured; see PostgresDSN.
func ForEachDialect(t *testing.T, fn func(t *testing.T, open func(t *testing.T, migrations fs.FS) *db.DB)) {
	t.Helper()
	t.Run(string(db.SQLite), func(t *testing.T) {
		fn(t, OpenSQLite)
	})
	t.Run(string(db.Postgres), func(t *testing.T) {
		PostgresDSN(t) // skip before fn does any setup
		fn(t, OpenPostgres)
	})
}

// OpenSQLite opens a new SQLite database in t.TempDir(), closed when the test
// ends.
func OpenSQLite(t *testing.T, migrations fs.FS) *db.DB {
	t.Helper()
	return open(t, Config(t, db.SQLite, migrations))
}

// OpenPostgres opens a fresh, uniquely named schema in the test database,
// closed and dropped when the test ends.
func OpenPostgres(t *testing.T, migrations fs.FS) *db.DB {
	t.Helper()
	return open(t, Config(t, db.Postgres, migrations))
}

// Config returns a db.Config for a fresh, empty database of the given dialect
// without opening it, for tests that call db.Open themselves (to check that
// it fails, or to open the same database twice). Cleanup is registered
// already: the SQLite file lives in t.TempDir(), and the PostgreSQL schema is
// dropped when the test ends whether or not it was ever created.
func Config(t *testing.T, dialect db.Dialect, migrations fs.FS) db.Config {
	t.Helper()
	switch dialect {
	case db.SQLite:
		return db.Config{
			SQLitePath: filepath.Join(t.TempDir(), "atrium.db"),
			Schema:     "test",
			Migrations: migrations,
		}
	case db.Postgres:
		dsn := withTimeZone(t, PostgresDSN(t))
		schema := uniqueSchema(t)
		t.Cleanup(func() { dropSchema(t, dsn, schema) })
		return db.Config{
			PostgresDSN: dsn,
			Schema:      schema,
			Migrations:  migrations,
			// Tests open many databases at once against one server.
			MaxOpenConns: 4,
		}
	default:
		t.Fatalf("dbtest: unknown dialect %q", dialect)
		return db.Config{}
	}
}

// PostgresDSN returns $ATRIUM_TEST_POSTGRES_DSN. When it is unset the test is
// skipped, except on CI ($CI non-empty), where the PostgreSQL tests must run
// and the test fails instead.
func PostgresDSN(t *testing.T) string {
	t.Helper()
	if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
		return dsn
	}
	const how = "run `make test`, or start a server with " +
		"`export " + EnvPostgresDSN + "=$(scripts/test-postgres.sh start /tmp/atrium-pg)`"
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set, but CI must run the PostgreSQL tests: %s", EnvPostgresDSN, how)
	}
	t.Skipf("PostgreSQL tests skipped: %s is not set; %s", EnvPostgresDSN, how)
	return ""
}

func open(t *testing.T, cfg db.Config) *db.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := db.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("dbtest: open %s database: %v", cfg.Schema, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("dbtest: close: %v", err)
		}
	})
	return d
}

// withTimeZone adds the test time zone to dsn unless it sets one; pgx passes
// unknown DSN parameters to the server as run-time parameters.
func withTimeZone(t *testing.T, dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("dbtest: %s is not a valid URL: %v", EnvPostgresDSN, err)
		}
		q := u.Query()
		if q.Get("timezone") == "" {
			q.Set("timezone", TestTimeZone)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	if strings.Contains(dsn, "timezone=") {
		return dsn
	}
	return dsn + " timezone=" + TestTimeZone
}

// uniqueSchema derives a readable schema name from the test name plus a
// random suffix, so leftovers from a crashed run are easy to attribute and
// parallel tests or packages never collide.
func uniqueSchema(t *testing.T) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	suffix := make([]byte, 5)
	rand.Read(suffix)
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(suffix))
	return b.String()
}

// dropSchema connects on its own rather than through the test's DB, which
// may never have opened or may already be closed.
func dropSchema(t *testing.T, dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("dbtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
		t.Errorf("dbtest: drop schema %s: %v", schema, err)
	}
}

// FreshDatabase creates an empty database on the test cluster and returns
// its URL, for tests that start whole servers (each product then makes its
// own schema in it); it is dropped when the test ends. Like PostgresDSN it
// skips locally and fails under CI when no cluster is configured.
func FreshDatabase(t *testing.T) string {
	t.Helper()
	dsn := PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(uniqueSchema(t), "t_")
	name = "atrium_" + name
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
		conn.Close(ctx)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
