// Package accounts is the suite's user directory: users and their roles,
// locks, API keys, and the sign-in sessions of the embedded OpenID provider.
//
// It lives in the suite database under its own schema ("accounts"; with
// SQLite, DATA_DIR/accounts/accounts.db) rather than in any product's,
// because every product, the CLI and the embedded provider need the same
// answer to "who is this and what may they do". Products read roles from
// here instead of from ID-token claims, so an admin's change (a new role, a
// lock) takes effect on the next request in every product at once (within
// 10 ms when made by another process, see db.DB.DataVersion).
package accounts

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
)

// Schema is the database schema (and data subdirectory) of the directory.
const Schema = "accounts"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the directory's tables, for db.Open (tests open their
// database through dbtest with these and hand it to OpenDB).
var Migrations fs.FS = mustSub(migrationFiles, "migrations")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Errors the Store returns; test with errors.Is. Messages wrapping
// ErrInvalid say what to fix.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrBadCredentials = errors.New("wrong username, password or key")
	ErrLocked         = errors.New("account is locked")
	ErrExpired        = errors.New("expired")
	ErrInvalid        = errors.New("invalid")
)

// Role is what a user may do in every product.
type Role string

// The roles, least to most privileged.
const (
	RoleViewer    Role = config.RoleViewer
	RolePublisher Role = config.RolePublisher
	RoleAdmin     Role = config.RoleAdmin
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool {
	return r == RoleViewer || r == RolePublisher || r == RoleAdmin
}

// ParseRole turns "viewer", "publisher" or "admin" into a Role.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("%w: role %q is not one of viewer, publisher, admin", ErrInvalid, s)
	}
	return r, nil
}

// User is one person (or robot) known to the suite.
type User struct {
	ID       string // a UUID; the embedded provider's "sub"
	Username string
	Name     string
	Email    string
	Role     Role
	Locked   bool
	// Issuer and Subject identify a user who came from an external
	// OpenID provider; both are empty for local users.
	Issuer  string
	Subject string
	// HasPassword is false for users who cannot sign in with the embedded
	// provider (external users, robots with only API keys).
	HasPassword bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DefaultBcryptCost is the bcrypt work factor for stored passwords.
const DefaultBcryptCost = 10

// Store is the user directory. It is safe for concurrent use.
type Store struct {
	db    *db.DB
	ownDB bool
	log   *slog.Logger
	now   func() time.Time
	cost  int

	dummyOnce sync.Once
	dummyHash []byte

	// Rows read for every request, kept while the database is unchanged:
	// API keys with their owners, users by id, sign-ins.
	keys    db.VersionCache[keyEntry]
	users   db.VersionCache[User]
	signIns db.VersionCache[signInRow]
}

// Option changes a Store's defaults.
type Option func(*Store)

// WithClock replaces time.Now, so tests can expire keys and sign-ins.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithBcryptCost sets the bcrypt cost of new password hashes; tests use
// bcrypt.MinCost to stay fast. Values outside bcrypt's range are ignored.
func WithBcryptCost(cost int) Option {
	return func(s *Store) {
		if cost >= bcrypt.MinCost && cost <= bcrypt.MaxCost {
			s.cost = cost
		}
	}
}

// WithLogger sets the logger of a Store made by OpenDB.
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// Open opens (and migrates) the directory in the suite database that cfg
// names: PostgreSQL schema "accounts" when shared.database_url is set,
// otherwise DATA_DIR/accounts/accounts.db. Close closes it.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Store, error) {
	if cfg.Shared.DatabaseURL == "" && strings.TrimSpace(cfg.Shared.DataDir) == "" {
		return nil, errors.New("accounts: shared.data_dir or shared.database_url is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := db.OpenSuite(ctx, cfg.Shared, Schema, Migrations, log)
	if err != nil {
		return nil, err
	}
	s := OpenDB(d, append([]Option{WithLogger(log)}, opts...)...)
	s.ownDB = true
	return s, nil
}

// OpenDB wraps a database that already has Migrations applied. The caller
// keeps owning d: Close does not close it.
func OpenDB(d *db.DB, opts ...Option) *Store {
	s := &Store{db: d, now: time.Now, cost: DefaultBcryptCost, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Close closes the database if Open opened it.
func (s *Store) Close() error {
	if s.ownDB {
		return s.db.Close()
	}
	return nil
}

// Ping checks that the database answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func toMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func fromNullMS(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// violation on either dialect; that is how concurrent creators of the same
// row learn they lost, without a read-then-write race.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// newID returns a version 7 UUID: time-ordered, so rows created in one
// instant still list in creation order, and index inserts stay local.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString() // only if the system clock cannot be read
	}
	return id.String()
}
