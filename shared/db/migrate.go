package db

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// migrationFile matches NNNN_description.sql with an optional dialect before
// .sql. Anything else ending in .sql is rejected rather than ignored, so a
// typo cannot silently skip a migration.
var migrationFile = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+?)(?:\.(postgres|sqlite))?\.sql$`)

type migration struct {
	version int
	file    string // the file applied on this dialect; recorded in schema_migrations
	sql     string
}

// loadMigrations reads the migrations at the root of fsys and picks, for each
// number, the file for dialect. Numbering is checked for both dialects, so a
// gap is caught on a developer's SQLite even if only PostgreSQL lacks a file.
func loadMigrations(fsys fs.FS, dialect Dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	type files struct{ desc, common, postgres, sqlite string }
	byVersion := map[int]*files{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := migrationFile.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql or NNNN_description.{postgres,sqlite}.sql (description in a-z, 0-9, _)", name)
		}
		v, _ := strconv.Atoi(m[1])
		f := byVersion[v]
		if f == nil {
			f = &files{desc: m[2]}
			byVersion[v] = f
		}
		if f.desc != m[2] {
			return nil, fmt.Errorf("migration %s: number %s is also used by %s_%s", name, m[1], m[1], f.desc)
		}
		switch Dialect(m[3]) {
		case Postgres:
			f.postgres = name
		case SQLite:
			f.sqlite = name
		default:
			f.common = name
		}
	}

	versions := make([]int, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	migs := make([]migration, 0, len(versions))
	for i, v := range versions {
		if v != i+1 {
			return nil, fmt.Errorf("migration %04d is missing (migrations must be numbered 0001, 0002, … without gaps)", i+1)
		}
		f := byVersion[v]
		if f.common == "" && (f.postgres == "" || f.sqlite == "") {
			have := f.postgres + f.sqlite
			return nil, fmt.Errorf("migration %s: no file for the other dialect (add %04d_%s.sql or the other dialect's file)", have, v, f.desc)
		}
		file := f.common
		switch {
		case dialect == Postgres && f.postgres != "":
			file = f.postgres
		case dialect == SQLite && f.sqlite != "":
			file = f.sqlite
		}
		body, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", file, err)
		}
		migs = append(migs, migration{version: v, file: file, sql: string(body)})
	}
	return migs, nil
}

// migrationsTable is schema-qualified on PostgreSQL so that bootstrapping
// does not depend on search_path resolving a schema created moments ago.
//
// Each track has its own table: the product's own migrations are tracked in
// schema_migrations, a shared package's (see Migrate) in
// schema_migrations_<track>, so their numbering never collides.
func (d *DB) migrationsTable(track string) string {
	name := "schema_migrations"
	if track != "" {
		name += "_" + track
	}
	if d.dialect == Postgres {
		return `"` + d.schema + `".` + name
	}
	return name
}

var trackName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// Migrate applies a second, independent set of migrations to this
// database, tracked under its own name. Shared packages that keep tables in
// every product's database (auth's sessions, say) use it, so those tables
// live in the product's database without the product copying their
// migrations. Their table names must not collide with the product's: prefix
// them with the track name.
func (d *DB) Migrate(ctx context.Context, track string, fsys fs.FS) error {
	if !trackName.MatchString(track) {
		return fmt.Errorf("migrate: track %q must match %s", track, trackName)
	}
	migs, err := loadMigrations(fsys, d.dialect)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", track, err)
	}
	return d.migrate(ctx, track, migs)
}

// migrate brings the schema up to date, one migration per transaction.
//
// Several servers may start at once against one database. Each transaction
// first takes a lock that serialises migrators (a transaction-scoped advisory
// lock keyed on the schema on PostgreSQL; the write lock that BEGIN IMMEDIATE
// takes on SQLite) and only then reads the current version, so every
// migration is applied exactly once and a server never sees a half-applied
// one. Transaction-scoped locks are released by commit or rollback, so no
// lock can outlive a failed or cancelled Open.
func (d *DB) migrate(ctx context.Context, track string, migs []migration) error {
	var bootstrap []string
	if d.dialect == Postgres {
		bootstrap = []string{
			`CREATE SCHEMA IF NOT EXISTS "` + d.schema + `"`,
			`CREATE TABLE IF NOT EXISTS ` + d.migrationsTable(track) + ` (
				version    INTEGER PRIMARY KEY,
				name       TEXT NOT NULL,
				applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
			)`,
		}
	} else {
		bootstrap = []string{
			`CREATE TABLE IF NOT EXISTS ` + d.migrationsTable(track) + ` (
				version    INTEGER PRIMARY KEY,
				name       TEXT NOT NULL,
				applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
			)`,
		}
	}
	err := d.migrationTx(ctx, func(tx *sql.Tx) error {
		for _, q := range bootstrap {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", d.schema, err)
	}

	for {
		var applied *migration
		err := d.migrationTx(ctx, func(tx *sql.Tx) error {
			var current int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+d.migrationsTable(track)).Scan(&current); err != nil {
				return fmt.Errorf("migrate %s: read version: %w", d.schema, err)
			}
			if current > len(migs) {
				return fmt.Errorf("migrate %s: database is at migration %d but this build only knows %d; refusing to run an older Atrium against a newer database", d.schema, current, len(migs))
			}
			if current == len(migs) {
				return nil
			}
			m := migs[current]
			if strings.TrimSpace(m.sql) != "" {
				if _, err := tx.ExecContext(ctx, m.sql); err != nil {
					return fmt.Errorf("migrate %s: %w", m.file, err)
				}
			}
			if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+d.migrationsTable(track)+` (version, name) VALUES (?, ?)`), m.version, m.file); err != nil {
				return fmt.Errorf("migrate %s: record version: %w", m.file, err)
			}
			applied = &m
			return nil
		})
		if err != nil {
			if applied != nil { // only the commit failed
				return fmt.Errorf("migrate %s: %w", applied.file, err)
			}
			return err
		}
		if applied == nil {
			return nil
		}
		d.logger.Info("applied database migration", "schema", d.schema, "track", track, "dialect", string(d.dialect), "version", applied.version, "file", applied.file)
	}
}

// Version returns the number of the newest applied migration (0 for none).
func (d *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+d.migrationsTable("")).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrationTx runs fn in a transaction holding the migration lock.
func (d *DB) migrationTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if d.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey(d.schema)); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// migrationLockKey derives the advisory lock key from the schema so that
// different products migrating the same database do not wait for each other.
func migrationLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("atrium/db/migrate/" + schema))
	return int64(h.Sum64())
}
