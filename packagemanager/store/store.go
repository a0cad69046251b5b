// Package store is Package Manager's metadata: sources, repositories and
// their subscriptions, the numbered transactions every change to a source
// makes, and the Python files and R packages each transaction added.
//
// A snapshot is a transaction id. A repository served at snapshot T shows
// exactly the files its sources had after transaction T, so an install from
// a snapshot URL gives the same files a month later. Files are immutable:
// a filename is accepted once per source, and a second upload with other
// content is refused rather than replacing what clients may have pinned.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/shared/db"
)

// Source types.
const (
	LocalPython = "local-python" // twine uploads
	PyPIMirror  = "pypi"         // an upstream simple index, cached
	LocalR      = "local-r"      // R source packages added by upload or CLI
)

// Repository types.
const (
	Python = "python"
	R      = "r"
)

var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

var goodName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// reserved names would shadow the server's own paths.
var reserved = map[string]bool{"upload": true, "__api__": true, "__auth__": true, "metrics": true, "healthz": true, "readyz": true}

// Source is one origin of packages.
type Source struct {
	ID, Name, Type, UpstreamURL string
	CreatedAt                   time.Time
}

// RepoType is the kind of repository a source can be subscribed to.
func (s Source) RepoType() string {
	if s.Type == LocalR {
		return R
	}
	return Python
}

// Repo is a view over ordered sources.
type Repo struct {
	ID, Name, Type, Description string
	Sources                     []Source // in subscription order
	CreatedAt                   time.Time
}

// Store is Package Manager's metadata store.
type Store struct {
	db  *db.DB
	now func() time.Time
	// What every index request reads, kept while the database is
	// unchanged (db.VersionCache): the repository with its sources, and
	// the latest transaction. Callers must not modify a Repo's Sources.
	repos  db.VersionCache[Repo]
	latest db.VersionCache[int64]
}

// New wraps a database migrated with Package Manager's migrations.
func New(d *db.DB, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: d, now: now}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ms(t time.Time) int64     { return t.UnixMilli() }
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func checkName(kind, name string) error {
	if !goodName.MatchString(name) || reserved[name] {
		return invalid("%s name %q must be lower-case letters, digits, '.', '_' or '-' (up to 64), and not a reserved word", kind, name)
	}
	return nil
}

func isUnique(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unique") || strings.Contains(msg, "duplicate key")
}

// CreateSource adds a source.
func (s *Store) CreateSource(ctx context.Context, name, typ, upstream string) (Source, error) {
	if err := checkName("source", name); err != nil {
		return Source{}, err
	}
	switch typ {
	case LocalPython, LocalR:
		if upstream != "" {
			return Source{}, invalid("a %s source has no upstream", typ)
		}
	case PyPIMirror:
		if !strings.HasPrefix(upstream, "http://") && !strings.HasPrefix(upstream, "https://") {
			return Source{}, invalid("a pypi source needs an http(s) upstream index URL, got %q", upstream)
		}
		if !strings.HasSuffix(upstream, "/") {
			upstream += "/"
		}
	default:
		return Source{}, invalid("source type %q is not one of local-python, pypi, local-r", typ)
	}
	src := Source{ID: newID(), Name: name, Type: typ, UpstreamURL: upstream, CreatedAt: fromMS(ms(s.now()))}
	_, err := s.db.ExecContext(ctx, `INSERT INTO sources (id, name, type, upstream_url, created_at) VALUES (?, ?, ?, ?, ?)`,
		src.ID, src.Name, src.Type, src.UpstreamURL, ms(src.CreatedAt))
	if isUnique(err) {
		return Source{}, fmt.Errorf("source %s: %w", name, ErrExists)
	}
	if err != nil {
		return Source{}, fmt.Errorf("create source: %w", err)
	}
	return src, nil
}

// CreateRepo adds a repository.
func (s *Store) CreateRepo(ctx context.Context, name, typ, description string) (Repo, error) {
	if err := checkName("repository", name); err != nil {
		return Repo{}, err
	}
	if typ != Python && typ != R {
		return Repo{}, invalid("repository type %q is not python or r", typ)
	}
	r := Repo{ID: newID(), Name: name, Type: typ, Description: description, CreatedAt: fromMS(ms(s.now()))}
	_, err := s.db.ExecContext(ctx, `INSERT INTO repos (id, name, type, description, created_at) VALUES (?, ?, ?, ?, ?)`,
		r.ID, r.Name, r.Type, r.Description, ms(r.CreatedAt))
	if isUnique(err) {
		return Repo{}, fmt.Errorf("repository %s: %w", name, ErrExists)
	}
	if err != nil {
		return Repo{}, fmt.Errorf("create repository: %w", err)
	}
	return r, nil
}

// Subscribe appends source to repo's sources; earlier sources win when two
// have the same package.
func (s *Store) Subscribe(ctx context.Context, repoName, sourceName string) error {
	r, err := s.Repo(ctx, repoName)
	if err != nil {
		return err
	}
	src, err := s.Source(ctx, sourceName)
	if err != nil {
		return err
	}
	if src.RepoType() != r.Type {
		return invalid("a %s source cannot feed a %s repository", src.Type, r.Type)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO subscriptions (repo_id, source_id, position) VALUES (?, ?, ?)`,
		r.ID, src.ID, len(r.Sources))
	if isUnique(err) {
		return fmt.Errorf("%s already subscribes to %s: %w", repoName, sourceName, ErrExists)
	}
	return err
}

func scanSource(row interface{ Scan(...any) error }) (Source, error) {
	var src Source
	var created int64
	err := row.Scan(&src.ID, &src.Name, &src.Type, &src.UpstreamURL, &created)
	src.CreatedAt = fromMS(created)
	return src, err
}

// Source returns the named source.
func (s *Store) Source(ctx context.Context, name string) (Source, error) {
	src, err := scanSource(s.db.QueryRowContext(ctx, `SELECT id, name, type, upstream_url, created_at FROM sources WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Source{}, fmt.Errorf("source %s: %w", name, ErrNotFound)
	}
	return src, err
}

// ListSources returns every source by name.
func (s *Store) ListSources(ctx context.Context) ([]Source, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, type, upstream_url, created_at FROM sources ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Source
	for rows.Next() {
		src, err := scanSource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// Repo returns the named repository with its sources in order.
func (s *Store) Repo(ctx context.Context, name string) (Repo, error) {
	return s.repos.Get(ctx, s.db, name, func() (Repo, error) { return s.loadRepo(ctx, name) })
}

func (s *Store) loadRepo(ctx context.Context, name string) (Repo, error) {
	var r Repo
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, type, description, created_at FROM repos WHERE name = ?`, name).
		Scan(&r.ID, &r.Name, &r.Type, &r.Description, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Repo{}, fmt.Errorf("repository %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Repo{}, err
	}
	r.CreatedAt = fromMS(created)
	rows, err := s.db.QueryContext(ctx, `SELECT s.id, s.name, s.type, s.upstream_url, s.created_at
		FROM subscriptions sub JOIN sources s ON s.id = sub.source_id WHERE sub.repo_id = ? ORDER BY sub.position`, r.ID)
	if err != nil {
		return Repo{}, err
	}
	defer rows.Close()
	for rows.Next() {
		src, err := scanSource(rows)
		if err != nil {
			return Repo{}, err
		}
		r.Sources = append(r.Sources, src)
	}
	return r, rows.Err()
}

// ListRepos returns every repository by name, with its sources.
func (s *Store) ListRepos(ctx context.Context) ([]Repo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM repos ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	var out []Repo
	for _, n := range names {
		r, err := s.Repo(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// begin records a transaction on source inside tx and returns its id.
func (s *Store) begin(ctx context.Context, tx *db.Tx, sourceID, action, detail string) (int64, error) {
	var id int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'txn' RETURNING value`).Scan(&id); err != nil {
		return 0, fmt.Errorf("next transaction: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO transactions (id, source_id, created_at, action, detail) VALUES (?, ?, ?, ?, ?)`,
		id, sourceID, ms(s.now()), action, detail)
	return id, err
}

// Latest is the newest transaction id (0 before any change).
func (s *Store) Latest(ctx context.Context) (int64, error) {
	return s.latest.Get(ctx, s.db, "txn", func() (int64, error) {
		var v int64
		err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'txn'`).Scan(&v)
		return v, err
	})
}

var datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Snapshot resolves a URL's snapshot part: "latest", a transaction id, or
// a date YYYY-MM-DD (the last transaction of that day, UTC).
func (s *Store) Snapshot(ctx context.Context, spec string) (int64, error) {
	latest, err := s.Latest(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case spec == "latest":
		return latest, nil
	case datePattern.MatchString(spec):
		day, err := time.Parse("2006-01-02", spec)
		if err != nil {
			return 0, invalid("snapshot %q is not a valid date", spec)
		}
		var id sql.NullInt64
		err = s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM transactions WHERE created_at < ?`, ms(day.Add(24*time.Hour))).Scan(&id)
		if err != nil {
			return 0, err
		}
		if !id.Valid {
			return 0, fmt.Errorf("snapshot %s: nothing existed yet: %w", spec, ErrNotFound)
		}
		return id.Int64, nil
	}
	id, err := strconv.ParseInt(spec, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("snapshot %q is not latest, a date (YYYY-MM-DD) or a transaction id: %w", spec, ErrNotFound)
	}
	if id > latest {
		return 0, fmt.Errorf("snapshot %d: no such transaction yet (latest is %d): %w", id, latest, ErrNotFound)
	}
	return id, nil
}

// visible is the SQL condition for rows of a snapshot (one ? for the txn,
// used twice).
const visible = `added_txn <= ? AND (removed_txn IS NULL OR removed_txn > ?)`
