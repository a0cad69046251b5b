package db_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

func migrations(t *testing.T, name string) fs.FS {
	t.Helper()
	dir := filepath.Join("testdata", "migrations", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	return os.DirFS(dir)
}

// forEachDialect is dbtest.ForEachDialect for tests that need the Config
// itself, to open one database more than once or to expect Open to fail.
func forEachDialect(t *testing.T, fn func(t *testing.T, dialect db.Dialect)) {
	for _, d := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			if d == db.Postgres {
				dbtest.PostgresDSN(t)
			}
			fn(t, d)
		})
	}
}

func mustOpen(t *testing.T, cfg db.Config) *db.DB {
	t.Helper()
	d, err := db.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func version(t *testing.T, d *db.DB) int {
	t.Helper()
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	return v
}

func count(t *testing.T, d *db.DB, table string) int {
	t.Helper()
	var n int
	if err := d.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func tableExists(t *testing.T, d *db.DB, table string) bool {
	t.Helper()
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if d.Dialect() == db.Postgres {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	}
	var n int
	if err := d.QueryRowContext(t.Context(), q, table).Scan(&n); err != nil {
		t.Fatalf("look up table %s: %v", table, err)
	}
	return n > 0
}

func appliedNames(t *testing.T, d *db.DB) []string {
	t.Helper()
	rows, err := d.QueryContext(t.Context(), "SELECT name FROM schema_migrations WHERE applied_at IS NOT NULL ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		names = append(names, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMigrateFromEmptyAndReopen(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect db.Dialect) {
		cfg := dbtest.Config(t, dialect, migrations(t, "good"))

		d := mustOpen(t, cfg)
		if got := d.Dialect(); got != dialect {
			t.Fatalf("Dialect() = %q, want %q", got, dialect)
		}
		if got := version(t, d); got != 2 {
			t.Fatalf("Version = %d, want 2", got)
		}
		want := []string{"0001_create_items.sql", "0002_create_counter.sql"}
		if got := appliedNames(t, d); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("applied = %v, want %v", got, want)
		}
		if _, err := d.ExecContext(t.Context(), "UPDATE counter SET n = ? WHERE id = ?", 42, 1); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}

		// Re-opening applies nothing: 0002's INSERT would fail on a re-run,
		// and the counter keeps its value.
		d = mustOpen(t, cfg)
		if got := version(t, d); got != 2 {
			t.Fatalf("Version after reopen = %d, want 2", got)
		}
		if got := count(t, d, "schema_migrations"); got != 2 {
			t.Fatalf("schema_migrations rows = %d, want 2", got)
		}
		var n int
		if err := d.QueryRowContext(t.Context(), "SELECT n FROM counter WHERE id = ?", 1).Scan(&n); err != nil || n != 42 {
			t.Fatalf("counter = %d, %v; want 42", n, err)
		}
		if err := d.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

func TestPostgresTablesLiveInProductSchema(t *testing.T) {
	d := dbtest.OpenPostgres(t, migrations(t, "good"))
	var schema, tz string
	if err := d.QueryRowContext(t.Context(), "SELECT current_schema(), current_setting('TimeZone')").Scan(&schema, &tz); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "t_") {
		t.Errorf("current_schema() = %q, want the test's own schema", schema)
	}
	if tz != dbtest.TestTimeZone {
		t.Errorf("TimeZone = %q, want %q", tz, dbtest.TestTimeZone)
	}
	var n int
	err := d.QueryRowContext(t.Context(),
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('items', 'counter', 'schema_migrations')",
		schema).Scan(&n)
	if err != nil || n != 3 {
		t.Fatalf("tables in schema %s = %d, %v; want 3", schema, n, err)
	}
}

func TestDialectOverrides(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open func(*testing.T, fs.FS) *db.DB) {
		d := open(t, migrations(t, "dialect"))
		dialect := d.Dialect()

		var flavour string
		if err := d.QueryRowContext(t.Context(), "SELECT name FROM flavour").Scan(&flavour); err != nil {
			t.Fatal(err)
		}
		if flavour != string(dialect) {
			t.Errorf("flavour = %q: the %s override of 0001 was not used", flavour, dialect)
		}
		want := []string{"0001_create_things.sqlite.sql", "0002_add_note.sql", "0003_index_names.sqlite.sql"}
		if dialect == db.Postgres {
			want = []string{"0001_create_things.postgres.sql", "0002_add_note.sql", "0003_index_names.sql"}
		}
		if got := appliedNames(t, d); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("applied = %v, want %v", got, want)
		}

		// The dialect-specific identity columns both work with RETURNING.
		var id1, id2 int64
		if err := d.QueryRowContext(t.Context(), "INSERT INTO things (name, note) VALUES (?, ?) RETURNING id", "a", "why?").Scan(&id1); err != nil {
			t.Fatal(err)
		}
		if err := d.QueryRowContext(t.Context(), "INSERT INTO things (name) VALUES (?) RETURNING id", "b").Scan(&id2); err != nil {
			t.Fatal(err)
		}
		if id2 <= id1 {
			t.Errorf("ids %d then %d, want increasing", id1, id2)
		}
	})
}

func TestFailingMigrationLeavesNothing(t *testing.T) {
	bad := migrations(t, "bad")
	first, err := fs.ReadFile(bad, "0001_ok.sql")
	if err != nil {
		t.Fatal(err)
	}
	forEachDialect(t, func(t *testing.T, dialect db.Dialect) {
		cfg := dbtest.Config(t, dialect, bad)
		d, err := db.Open(t.Context(), cfg)
		if err == nil {
			d.Close()
			t.Fatal("Open succeeded with a broken migration")
		}
		if !strings.Contains(err.Error(), "migrate 0002_broken.sql: ") {
			t.Fatalf("error %q does not name the failing migration", err)
		}

		// Look at what is left through the migrations that do work.
		cfg.Migrations = fstest.MapFS{"0001_ok.sql": {Data: first}}
		d = mustOpen(t, cfg)
		if got := version(t, d); got != 1 {
			t.Errorf("Version = %d, want 1", got)
		}
		if got := count(t, d, "schema_migrations"); got != 1 {
			t.Errorf("schema_migrations rows = %d, want 1", got)
		}
		if !tableExists(t, d, "ok") {
			t.Error("table ok from the good migration 0001 is missing")
		}
		if tableExists(t, d, "half_done") {
			t.Error("table half_done from the failed migration 0002 survived")
		}
	})
}

func TestDatabaseNewerThanBuild(t *testing.T) {
	good := migrations(t, "good")
	first, err := fs.ReadFile(good, "0001_create_items.sql")
	if err != nil {
		t.Fatal(err)
	}
	forEachDialect(t, func(t *testing.T, dialect db.Dialect) {
		cfg := dbtest.Config(t, dialect, good)
		mustOpen(t, cfg).Close()
		cfg.Migrations = fstest.MapFS{"0001_create_items.sql": {Data: first}}
		d, err := db.Open(t.Context(), cfg)
		if err == nil {
			d.Close()
			t.Fatal("an older build opened a newer database")
		}
		if !strings.Contains(err.Error(), "at migration 2") {
			t.Fatalf("error %q does not explain the version mismatch", err)
		}
	})
}

func TestMigrationNames(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("CREATE TABLE x (id INTEGER);")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string // "" means Open succeeds
	}{
		{"empty", fstest.MapFS{}, ""},
		{"other files ignored", fstest.MapFS{"0001_a.sql": sql, "README.md": sql, "sub/0005_z.sql": sql}, ""},
		{"three digits", fstest.MapFS{"001_a.sql": sql}, "001_a.sql"},
		{"upper case", fstest.MapFS{"0001_A.sql": sql}, "0001_A.sql"},
		{"dash", fstest.MapFS{"0001-a.sql": sql}, "0001-a.sql"},
		{"no description", fstest.MapFS{"0001.sql": sql}, "0001.sql"},
		{"unknown dialect", fstest.MapFS{"0001_a.mysql.sql": sql}, "0001_a.mysql.sql"},
		{"gap", fstest.MapFS{"0001_a.sql": sql, "0003_c.sql": sql}, "0002 is missing"},
		{"not starting at 1", fstest.MapFS{"0002_b.sql": sql}, "0001 is missing"},
		{"duplicate number", fstest.MapFS{"0001_a.sql": sql, "0001_b.sql": sql}, "number 0001 is also used"},
		{"override with other description", fstest.MapFS{"0001_a.sql": sql, "0001_b.postgres.sql": sql}, "number 0001 is also used"},
		{"postgres only", fstest.MapFS{"0001_a.postgres.sql": sql}, "0001_a.postgres.sql: no file for the other dialect"},
		{"sqlite only", fstest.MapFS{"0001_a.sqlite.sql": sql}, "0001_a.sqlite.sql: no file for the other dialect"},
		{"both overrides", fstest.MapFS{"0001_a.sqlite.sql": sql, "0001_a.postgres.sql": sql}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			d, err := db.Open(t.Context(), db.Config{SQLitePath: path, Schema: "test", Migrations: tt.files})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				d.Close()
				return
			}
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			// Migrations are checked before the database is touched.
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("database file created despite bad migrations (stat: %v)", err)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	good := fstest.MapFS{}
	tests := []struct {
		name    string
		cfg     db.Config
		wantErr string
	}{
		{"no database", db.Config{Schema: "connect", Migrations: good}, "SQLitePath or PostgresDSN"},
		{"empty schema", db.Config{SQLitePath: "x.db", Migrations: good}, "Schema is required"},
		{"nil migrations", db.Config{SQLitePath: "x.db", Schema: "connect"}, "Migrations is required"},
		{"upper-case schema", db.Config{SQLitePath: "x.db", Schema: "Connect", Migrations: good}, `Schema "Connect"`},
		{"schema starting with digit", db.Config{SQLitePath: "x.db", Schema: "1connect", Migrations: good}, `Schema "1connect"`},
		{"schema with dash", db.Config{SQLitePath: "x.db", Schema: "package-manager", Migrations: good}, `Schema "package-manager"`},
		{"schema with quote", db.Config{SQLitePath: "x.db", Schema: `x"; DROP SCHEMA public; --`, Migrations: good}, "Schema"},
		{"schema too long", db.Config{SQLitePath: "x.db", Schema: strings.Repeat("a", 64), Migrations: good}, "Schema"},
		{"reserved schema", db.Config{SQLitePath: "x.db", Schema: "pg_connect", Migrations: good}, `Schema "pg_connect"`},
		{"in-memory sqlite", db.Config{SQLitePath: ":memory:", Schema: "connect", Migrations: good}, "SQLitePath"},
		{"sqlite uri", db.Config{SQLitePath: "file:x.db?mode=memory", Schema: "connect", Migrations: good}, "SQLitePath"},
		{"negative pool", db.Config{SQLitePath: "x.db", Schema: "connect", Migrations: good, MaxOpenConns: -1}, "MaxOpenConns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run in an empty directory to prove validation happens before
			// anything is created.
			dir := t.TempDir()
			t.Chdir(dir)
			d, err := db.Open(t.Context(), tt.cfg)
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("Open created %v before rejecting the config", entries[0].Name())
			}
		})
	}
}

func TestBadPostgresDSN(t *testing.T) {
	_, err := db.Open(t.Context(), db.Config{PostgresDSN: "postgres://u:secret@[::1", Schema: "connect", Migrations: fstest.MapFS{}})
	if err == nil || !strings.HasPrefix(err.Error(), "open postgres: ") {
		t.Fatalf("err = %v, want an open postgres error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect db.Dialect) {
		cfg := dbtest.Config(t, dialect, migrations(t, "good"))
		const opens = 4
		dbs := make([]*db.DB, opens)
		errs := make([]error, opens)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range opens {
			wg.Go(func() {
				<-start
				dbs[i], errs[i] = db.Open(context.Background(), cfg)
			})
		}
		close(start)
		wg.Wait()
		for i := range opens {
			if errs[i] != nil {
				t.Errorf("Open #%d: %v", i, errs[i])
				continue
			}
			defer dbs[i].Close()
		}
		if t.Failed() {
			return
		}
		if got := count(t, dbs[0], "schema_migrations"); got != 2 {
			t.Errorf("schema_migrations rows = %d, want 2", got)
		}
		if got := count(t, dbs[0], "counter"); got != 1 {
			t.Errorf("counter rows = %d, want 1 (migration 0002 applied more than once?)", got)
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open func(*testing.T, fs.FS) *db.DB) {
		d := open(t, migrations(t, "good"))
		const writers, perWriter = 8, 50
		errs := make(chan error, writers*perWriter)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					err := d.InTx(t.Context(), func(tx *db.Tx) error {
						if _, err := tx.ExecContext(t.Context(), "INSERT INTO items (id, note) VALUES (?, ?)", fmt.Sprintf("w%d-%d", w, i), "it's?"); err != nil {
							return err
						}
						_, err := tx.ExecContext(t.Context(), "UPDATE counter SET n = n + 1 WHERE id = ?", 1)
						return err
					})
					if err != nil {
						errs <- fmt.Errorf("writer %d, tx %d: %w", w, i, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var n int
		if err := d.QueryRowContext(t.Context(), "SELECT n FROM counter WHERE id = ?", 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != writers*perWriter {
			t.Errorf("counter = %d, want %d", n, writers*perWriter)
		}
		if got := count(t, d, "items"); got != writers*perWriter {
			t.Errorf("items = %d, want %d", got, writers*perWriter)
		}
	})
}

func TestFailedTransactionLeavesNothing(t *testing.T) {
	errBoom := errors.New("boom")
	insertTwo := func(t *testing.T, tx *db.Tx) {
		t.Helper()
		for _, id := range []string{"a", "b"} {
			if _, err := tx.ExecContext(t.Context(), "INSERT INTO items (id) VALUES (?)", id); err != nil {
				t.Fatalf("insert %s: %v", id, err)
			}
		}
	}
	tests := []struct {
		name      string
		fn        func(t *testing.T, tx *db.Tx) error
		wantErr   error // checked with errors.Is unless nil
		wantPanic any
	}{
		{
			name: "error",
			fn: func(t *testing.T, tx *db.Tx) error {
				insertTwo(t, tx)
				return errBoom
			},
			wantErr: errBoom,
		},
		{
			name: "failing statement",
			fn: func(t *testing.T, tx *db.Tx) error {
				insertTwo(t, tx)
				_, err := tx.ExecContext(t.Context(), "INSERT INTO items (id) VALUES (?)", "a") // duplicate key
				return err
			},
		},
		{
			name: "panic",
			fn: func(t *testing.T, tx *db.Tx) error {
				insertTwo(t, tx)
				panic(errBoom)
			},
			wantPanic: errBoom,
		},
	}
	dbtest.ForEachDialect(t, func(t *testing.T, open func(*testing.T, fs.FS) *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := open(t, migrations(t, "good"))
				var err error
				var recovered any
				func() {
					defer func() { recovered = recover() }()
					err = d.InTx(t.Context(), func(tx *db.Tx) error { return tt.fn(t, tx) })
				}()
				if recovered != tt.wantPanic {
					t.Fatalf("recovered %v, want %v", recovered, tt.wantPanic)
				}
				if tt.wantPanic == nil {
					if err == nil {
						t.Fatal("InTx returned nil")
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Fatalf("InTx = %v, want %v", err, tt.wantErr)
					}
				}
				if got := count(t, d, "items"); got != 0 {
					t.Errorf("items = %d after a failed transaction, want 0", got)
				}
				// The connection went back to the pool in a usable state.
				err = d.InTx(t.Context(), func(tx *db.Tx) error {
					_, err := tx.ExecContext(t.Context(), "INSERT INTO items (id) VALUES (?)", "after")
					return err
				})
				if err != nil {
					t.Fatalf("InTx after failure: %v", err)
				}
				if got := count(t, d, "items"); got != 1 {
					t.Errorf("items = %d, want 1", got)
				}
			})
		}
	})
}

// TestMigrationTracks: a shared package's migrations live beside the
// product's, numbered independently, applied once.
func TestMigrationTracks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect db.Dialect) {
		cfg := dbtest.Config(t, dialect, migrations(t, "good"))
		d := mustOpen(t, cfg)
		track := fstest.MapFS{
			"0001_auth_sessions.sql": {Data: []byte("CREATE TABLE auth_sessions (id TEXT PRIMARY KEY)")},
		}
		for range 2 {
			if err := d.Migrate(t.Context(), "auth", track); err != nil {
				t.Fatal(err)
			}
		}
		if got := count(t, d, "schema_migrations_auth"); got != 1 {
			t.Errorf("schema_migrations_auth rows = %d, want 1", got)
		}
		if got := version(t, d); got != 2 {
			t.Errorf("product Version = %d after a track migrated, want 2", got)
		}
		if _, err := d.ExecContext(t.Context(), "INSERT INTO auth_sessions (id) VALUES (?)", "s1"); err != nil {
			t.Errorf("track table missing: %v", err)
		}
		if err := d.Migrate(t.Context(), "Bad-Name", track); err == nil {
			t.Error("accepted a bad track name")
		}
	})
}
