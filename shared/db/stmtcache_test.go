package db_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atrium-suite/atrium/shared/db"
)

// TestStatementsSurviveSchemaChanges: SQLite statements are prepared once
// and reused; a statement prepared before a column is added sees the
// column afterwards, and data written through Exec is read back.
func TestStatementsSurviveSchemaChanges(t *testing.T) {
	migs := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL);")}}
	d := mustOpen(t, db.Config{SQLitePath: filepath.Join(t.TempDir(), "s.db"), Schema: "test", Migrations: migs})
	ctx := t.Context()
	for i := range 3 {
		if _, err := d.ExecContext(ctx, "INSERT INTO t (id, name) VALUES (?, ?)", i, "n"); err != nil {
			t.Fatal(err)
		}
	}
	const q = "SELECT * FROM t WHERE id = ?"
	cols := func() int {
		rows, err := d.QueryContext(ctx, q, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, _ := rows.Columns()
		return len(c)
	}
	if n := cols(); n != 2 {
		t.Fatalf("%d columns, want 2", n)
	}
	if _, err := d.ExecContext(ctx, "ALTER TABLE t ADD COLUMN extra TEXT"); err != nil {
		t.Fatal(err)
	}
	if n := cols(); n != 3 {
		t.Fatalf("after ALTER TABLE: %d columns, want 3", n)
	}
	var n int
	if err := d.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("count %d, %v", n, err)
	}
}

// BenchmarkQueryRow is a primary-key lookup as Connect does per request.
func BenchmarkQueryRow(b *testing.B) {
	migs := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, a TEXT, b TEXT, c BIGINT);")}}
	d, err := db.Open(b.Context(), db.Config{SQLitePath: filepath.Join(b.TempDir(), "s.db"), Schema: "test", Migrations: migs})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := b.Context()
	if _, err := d.ExecContext(ctx, "INSERT INTO t (id, name, a, b, c) VALUES (1, 'x', 'y', 'z', 3)"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var id, c int64
		var name, a, bb string
		if err := d.QueryRowContext(ctx, "SELECT id, name, a, b, c FROM t WHERE id = ?", 1).Scan(&id, &name, &a, &bb, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDataVersion: the version changes when this process or another
// opener of the same file commits, and stays put otherwise.
func TestDataVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	migs := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id BIGINT PRIMARY KEY);")}}
	a := mustOpen(t, db.Config{SQLitePath: path, Schema: "test", Migrations: migs})
	b := mustOpen(t, db.Config{SQLitePath: path, Schema: "test", Migrations: migs}) // as another process would
	version := func() int64 { t.Helper(); return dataVersion(t, a) }
	ctx := t.Context()
	v0 := version()
	if v := version(); v != v0 {
		t.Fatalf("version moved without a write: %d → %d", v0, v)
	}
	// A write through this DB is seen by the next call.
	if _, err := a.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	v := version()
	if v == v0 {
		t.Fatal("a write by this DB did not change the version")
	}
	v0 = v
	// Another opener's within the reuse window (db.VersionReuse): poll.
	if _, err := b.ExecContext(ctx, "INSERT INTO t (id) VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); version() == v0; {
		if time.Now().After(deadline) {
			t.Fatal("a write by another opener did not change the version")
		}
		runtime.Gosched()
	}
}

// dataVersion is d.DataVersion, failing the test on an error or "no such
// signal".
func dataVersion(t *testing.T, d *db.DB) int64 {
	t.Helper()
	v, ok, err := d.DataVersion(t.Context())
	if err != nil || !ok {
		t.Fatalf("DataVersion: %v %v", ok, err)
	}
	return v
}

// TestDataVersionReuse: while this process writes nothing, an answer is
// reused for db.VersionReuse, so another process's commit is seen by calls
// starting that long after it; this process's own writes are seen at once.
// The clock is held still and moved by the test.
func TestDataVersionReuse(t *testing.T) {
	var clock atomic.Int64
	clock.Store(1 << 62) // after every write other tests made on the real clock
	t.Cleanup(db.SetClockForTest(clock.Load))
	path := filepath.Join(t.TempDir(), "v.db")
	migs := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id BIGINT PRIMARY KEY);")}}
	a := mustOpen(t, db.Config{SQLitePath: path, Schema: "test", Migrations: migs})
	// Another process: the driver on the same file, not package db, so
	// its commits are not this process's writes.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ctx := t.Context()
	version := func() int64 { t.Helper(); return dataVersion(t, a) }
	clock.Add(1) // after the migrations' writes
	v0 := version()
	if _, err := other.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != v0 {
		t.Fatalf("asked again at once after another process's commit (%d → %d): the answer is not reused", v0, v)
	}
	clock.Add(int64(db.VersionReuse) - 1)
	if v := version(); v != v0 {
		t.Fatalf("asked again within the reuse window (%d → %d)", v0, v)
	}
	clock.Add(1)
	v1 := version()
	if v1 == v0 {
		t.Fatal("another process's commit is not seen once the reuse window is over")
	}
	if _, err := a.ExecContext(ctx, "INSERT INTO t (id) VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v == v1 {
		t.Fatal("this process's own write is not seen at once")
	}
}

// TestVersionCache: a value is loaded once while the database is
// unchanged, again after any commit, and errors are not kept.
func TestVersionCache(t *testing.T) {
	migs := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE t (id BIGINT PRIMARY KEY);")}}
	d := mustOpen(t, db.Config{SQLitePath: filepath.Join(t.TempDir(), "c.db"), Schema: "test", Migrations: migs})
	ctx := t.Context()
	var c db.VersionCache[int]
	loads := 0
	load := func() (int, error) { loads++; return loads, nil }
	for range 3 {
		if v, err := c.Get(ctx, d, "k", load); err != nil || v != 1 {
			t.Fatalf("Get = %d, %v; want the first load", v, err)
		}
	}
	if _, err := d.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get(ctx, d, "k", load); v != 2 {
		t.Fatalf("after a commit Get = %d, want a new load", v)
	}
	failing := func() (int, error) { loads++; return 0, errors.New("no row") }
	for range 2 {
		if _, err := c.Get(ctx, d, "missing", failing); err == nil {
			t.Fatal("an error was not returned")
		}
	}
	if loads != 4 {
		t.Fatalf("%d loads, want 4 (errors are not kept)", loads)
	}
}
