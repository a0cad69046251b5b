// Package db opens the SQL database of one Atrium product and brings its
// schema up to date.
//
// Every product keeps its state in SQL so that a small install can run on
// SQLite files while a larger or highly available one points all products at
// one PostgreSQL database. This package hides the few differences that
// product code would otherwise have to care about:
//
//   - Placeholders: write '?' everywhere; on PostgreSQL the query methods
//     rebind them to $1, $2, … (see [Dialect.Rebind]).
//   - Where tables live: one SQLite file per product, or one PostgreSQL
//     schema per product (selected through search_path), so the products
//     never see each other's tables.
//   - Concurrency: SQLite runs in WAL mode and starts every transaction with
//     BEGIN IMMEDIATE plus a busy timeout, so concurrent writers queue
//     instead of failing with SQLITE_BUSY; PostgreSQL needs nothing special.
//   - Migrations: numbered .sql files, optionally overridden per dialect,
//     applied at Open, each in its own transaction.
//
// SQL that must run on both dialects should stick to the common subset:
// use RETURNING instead of LastInsertId (PostgreSQL has no LastInsertId),
// avoid the jsonb ?-operators (they would be rebound; use
// jsonb_exists instead), and prefer dialect-specific migration files over
// dialect checks in queries where the schema itself differs.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite" // also registers driver "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL database engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Default pool sizes. SQLite serialises writers anyway, so a small pool is
// enough and keeps the number of file handles low; WAL still lets the extra
// connections read while one writes.
const (
	defaultSQLiteConns   = 8
	defaultPostgresConns = 10
)

const (
	sqliteBusyTimeoutMS = "10000"
	sqliteBusyTimeout   = 10 * time.Second
)

// sqliteParams is appended to every SQLite path. busy_timeout comes first (the
// driver applies it first regardless) so that switching to WAL waits for other
// processes instead of failing; _txlock=immediate takes the write lock at BEGIN,
// because a deferred transaction that upgrades from read to write lock fails
// with SQLITE_BUSY immediately, without waiting for the busy timeout.
const sqliteParams = "_pragma=busy_timeout(" + sqliteBusyTimeoutMS + ")" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(NORMAL)" +
	"&_txlock=immediate"

// schemaName is deliberately narrow: the schema is interpolated into SQL
// (CREATE SCHEMA, search_path) where placeholders cannot be used.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Config says which database to open and which migrations to apply.
type Config struct {
	// PostgresDSN, when set (postgres:// or postgresql:// URL, or key=value
	// DSN), selects PostgreSQL through a pgx pool. pgxpool settings such as
	// pool_max_conns may be given in the DSN.
	PostgresDSN string
	// SQLitePath is the SQLite file used when PostgresDSN is empty. Its
	// parent directory is created if missing.
	SQLitePath string
	// Schema names the owner of the tables ("connect", "workbench",
	// "packagemanager", "identity"). On PostgreSQL the tables live in this
	// schema, which is created if missing and is the only entry of every
	// pooled connection's search_path. On SQLite each product has its own
	// file, so it only appears in messages.
	Schema string
	// Migrations holds files NNNN_description.sql at its root, applied in
	// numeric order starting at 0001, each in its own transaction together
	// with its row in schema_migrations. NNNN_description.postgres.sql or
	// NNNN_description.sqlite.sql replaces the common file for that dialect;
	// every number needs a file for both dialects. Other files and
	// directories are ignored. Statements that cannot run inside a
	// transaction (CREATE INDEX CONCURRENTLY, VACUUM) are not supported.
	Migrations fs.FS
	// MaxOpenConns caps the connection pool; 0 picks a default (8 for
	// SQLite, 10 for PostgreSQL unless the DSN sets pool_max_conns).
	MaxOpenConns int
	// Logger receives one line per applied migration; nil discards.
	Logger *slog.Logger
}

func (c Config) dialect() Dialect {
	if c.PostgresDSN != "" {
		return Postgres
	}
	return SQLite
}

func (c Config) validate() error {
	switch {
	case c.PostgresDSN == "" && c.SQLitePath == "":
		return errors.New("db config: SQLitePath or PostgresDSN is required")
	case c.PostgresDSN == "" && (c.SQLitePath == ":memory:" || strings.HasPrefix(c.SQLitePath, "file:")):
		// Every pooled connection would get its own in-memory database, and
		// file: URIs would bypass the parameters this package relies on.
		return fmt.Errorf("db config: SQLitePath %q must be a file path", c.SQLitePath)
	case c.PostgresDSN == "" && strings.ContainsRune(c.SQLitePath, '?'):
		return fmt.Errorf("db config: SQLitePath %q must not contain '?'", c.SQLitePath)
	case c.Schema == "":
		return errors.New("db config: Schema is required")
	case !schemaName.MatchString(c.Schema):
		return fmt.Errorf("db config: Schema %q must match %s", c.Schema, schemaName)
	case len(c.Schema) > 63:
		return fmt.Errorf("db config: Schema %q is longer than 63 bytes", c.Schema)
	case strings.HasPrefix(c.Schema, "pg_"):
		return fmt.Errorf("db config: Schema %q must not start with pg_ (reserved by PostgreSQL)", c.Schema)
	case c.Migrations == nil:
		return errors.New("db config: Migrations is required")
	case c.MaxOpenConns < 0:
		return fmt.Errorf("db config: MaxOpenConns %d is negative", c.MaxOpenConns)
	}
	return nil
}

// DB is an open, migrated database. It is safe for concurrent use.
type DB struct {
	db      *sql.DB
	pool    *pgxpool.Pool // nil on SQLite
	dialect Dialect
	schema  string
	logger  *slog.Logger
	stmts   stmtCache

	versionMu    sync.Mutex
	versionConn  *sql.Conn // SQLite: the connection DataVersion asks
	version      int64     // its last answer
	versionAsked int64     // when that ask began (monotonic ns, see now)
}

// lastWrite is when a write through any DB of this process last finished
// (monotonic ns): an answer asked before it is not reused, so the
// process's own writes are seen at once, whichever DB made them.
var lastWrite atomic.Int64

// start is the origin of the monotonic clock now reads.
var start = time.Now()

// now reads the monotonic clock DataVersion's reuse is timed by (a
// variable so that tests can hold it still).
var now = func() int64 { return int64(time.Since(start)) }

// versionReuse is how long DataVersion reuses an answer when this process
// wrote nothing since: every request asks, and each ask is a read
// transaction that takes two file locks (fcntl), which was a tenth of
// Connect's CPU serving an app. A commit by another process (the atrium
// CLI locking a user) is seen by requests that start this long after it.
// At 1 ms a server under load still asked on every other request and
// queued requests behind the ask; at 10 ms it asks a hundred times a
// second at most.
const versionReuse = 10 * time.Millisecond

// wrote records that a write through d finished.
func (d *DB) wrote() { lastWrite.Store(now()) }

// isRead reports whether q only reads (so finishing it changes nothing).
func isRead(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n")
	return len(q) >= 6 && (strings.EqualFold(q[:6], "SELECT") || strings.EqualFold(q[:6], "PRAGMA"))
}

// Open validates cfg, connects, checks the connection and applies pending
// migrations. On any error nothing stays open.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &DB{dialect: cfg.dialect(), schema: cfg.Schema, logger: cfg.Logger}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	// Read and check the migrations before touching the database, so a
	// broken build cannot leave a half-migrated schema behind.
	migs, err := loadMigrations(cfg.Migrations, d.dialect)
	if err != nil {
		return nil, err
	}

	switch d.dialect {
	case Postgres:
		err = d.openPostgres(ctx, cfg)
	default:
		err = d.openSQLite(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := d.ping(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", d.dialect, err)
	}
	if err := d.migrate(ctx, "", migs); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// ping makes the first connection. On SQLite that runs the DSN's pragmas, and
// PRAGMA journal_mode=WAL on a new file can fail with SQLITE_BUSY without
// waiting for the busy timeout while another process (or DB) switches the
// same file to WAL at the same moment. Once the file is in WAL mode, which is
// persistent, that cannot happen again, so retrying here is enough.
func (d *DB) ping(ctx context.Context) error {
	if d.dialect != SQLite {
		return d.db.PingContext(ctx)
	}
	deadline := time.Now().Add(sqliteBusyTimeout)
	wait := time.Millisecond
	for {
		err := d.db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func (d *DB) openSQLite(cfg Config) error {
	path, err := filepath.Abs(cfg.SQLitePath)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	// Create the file ourselves so it is private: SQLite would use 0644, and
	// its -wal and -shm files copy the main file's permissions.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	f.Close()

	sqlDB, err := sql.Open("sqlite", path+"?"+sqliteParams)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	n := cfg.MaxOpenConns
	if n == 0 {
		n = defaultSQLiteConns
	}
	sqlDB.SetMaxOpenConns(n)
	// Keep connections: each new one re-runs the pragmas.
	sqlDB.SetMaxIdleConns(n)
	d.db = sqlDB
	return nil
}

func (d *DB) openPostgres(ctx context.Context, cfg Config) error {
	pcfg, err := pgxpool.ParseConfig(cfg.PostgresDSN)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	// Set at connection start-up, so it holds for every query on every
	// pooled connection, including ones database/sql opens later.
	pcfg.ConnConfig.RuntimeParams["search_path"] = `"` + cfg.Schema + `"`
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "atrium-" + cfg.Schema
	}
	switch {
	case cfg.MaxOpenConns > 0:
		pcfg.MaxConns = int32(cfg.MaxOpenConns)
	case !strings.Contains(cfg.PostgresDSN, "pool_max_conns"):
		pcfg.MaxConns = defaultPostgresConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	d.pool = pool
	d.db = stdlib.OpenDBFromPool(pool)
	d.db.SetMaxOpenConns(int(pcfg.MaxConns))
	return nil
}

// Dialect reports which engine the DB runs on.
func (d *DB) Dialect() Dialect { return d.dialect }

// SQL returns the underlying pool, for APIs that need a *sql.DB. Queries sent
// through it are not rebound.
func (d *DB) SQL() *sql.DB { return d.db }

// Rebind rewrites '?' placeholders for the DB's dialect.
func (d *DB) Rebind(q string) string { return d.dialect.Rebind(q) }

// ExecContext runs q with '?' placeholders rebound.
func (d *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer d.wrote()
	if st := d.stmts.get(ctx, d, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return d.db.ExecContext(ctx, d.Rebind(q), args...)
}

// QueryContext runs q with '?' placeholders rebound.
func (d *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if !isRead(q) {
		defer d.wrote() // INSERT … RETURNING
	}
	if st := d.stmts.get(ctx, d, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.db.QueryContext(ctx, d.Rebind(q), args...)
}

// QueryRowContext runs q with '?' placeholders rebound.
func (d *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if !isRead(q) {
		defer d.wrote()
	}
	if st := d.stmts.get(ctx, d, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.db.QueryRowContext(ctx, d.Rebind(q), args...)
}

// DataVersion returns a number that changes whenever anything — this
// process or another one sharing the file — has committed a change to the
// database, so a cache of rows can be trusted as long as it stays the same
// (SQLite's PRAGMA data_version, asked on one connection kept for it).
// Writes by this process are seen at once; another process's commit within
// versionReuse (an answer is reused that long while this process writes
// nothing). ok is false on PostgreSQL, which has no such cheap signal:
// callers then must not cache.
func (d *DB) DataVersion(ctx context.Context) (version int64, ok bool, err error) {
	if d.dialect != SQLite {
		return 0, false, nil
	}
	d.versionMu.Lock()
	defer d.versionMu.Unlock()
	t := now()
	if d.versionConn != nil && t-d.versionAsked < int64(versionReuse) && d.versionAsked > lastWrite.Load() {
		return d.version, true, nil
	}
	if d.versionConn == nil {
		c, err := d.db.Conn(ctx)
		if err != nil {
			return 0, false, err
		}
		d.versionConn = c
	}
	if err := d.versionConn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version); err != nil {
		d.versionConn.Close()
		d.versionConn = nil
		return 0, false, err
	}
	d.version, d.versionAsked = version, t
	return version, true, nil
}

// stmtCache keeps SQLite's prepared statements by query text. The SQLite
// driver compiles every query anew, which profiles of Connect serving
// content showed as the largest cost of a request (API key, content and
// group lookups); pgx already caches statements per connection, so
// PostgreSQL does not use this. Only data statements are kept, and at most
// maxCachedStmts, so queries built with varying text cannot grow it
// without bound. A *sql.Stmt prepares itself on each pooled connection
// as needed, and SQLite re-prepares after a schema change.
type stmtCache struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

const maxCachedStmts = 512

func (c *stmtCache) get(ctx context.Context, d *DB, q string) *sql.Stmt {
	if d.dialect != SQLite || !cacheable(q) {
		return nil
	}
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[q]; st != nil {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := d.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the plain path reports the error
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// cacheable reports whether q is a data statement (not DDL or a pragma).
func cacheable(q string) bool {
	q = strings.TrimSpace(q)
	if len(q) < 6 {
		return false
	}
	switch strings.ToUpper(q[:6]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		return true
	}
	return false
}

// Ping checks that the database is reachable.
func (d *DB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// Close closes the pool. On PostgreSQL it also closes the pgx pool, which
// closing the *sql.DB alone would leave open.
func (d *DB) Close() error {
	d.versionMu.Lock()
	if d.versionConn != nil {
		d.versionConn.Close()
		d.versionConn = nil
	}
	d.versionMu.Unlock()
	d.stmts.close()
	err := d.db.Close()
	if d.pool != nil {
		d.pool.Close()
	}
	return err
}

// InTx runs fn in a transaction and commits if fn returns nil. If fn returns
// an error or panics, the transaction is rolled back and the error (or panic)
// is passed on unchanged.
//
// On SQLite the transaction holds the write lock from its start, so keep it
// short; other writers wait for it (up to the busy timeout).
func (d *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	done := false
	defer func() {
		// Runs on panic and runtime.Goexit too, which is why it is deferred.
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(&Tx{tx: sqlTx, dialect: d.dialect}); err != nil {
		done = true
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	done = true
	err = sqlTx.Commit()
	d.wrote()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Tx is a transaction started by [DB.InTx]. Its query methods rebind '?'
// placeholders like DB's.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
}

// Dialect reports which engine the transaction runs on.
func (t *Tx) Dialect() Dialect { return t.dialect }

// ExecContext runs q with '?' placeholders rebound.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.dialect.Rebind(q), args...)
}

// QueryContext runs q with '?' placeholders rebound.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.dialect.Rebind(q), args...)
}

// QueryRowContext runs q with '?' placeholders rebound.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.dialect.Rebind(q), args...)
}
