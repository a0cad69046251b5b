package store_test

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/testutil"
)

func migrations(t *testing.T) fs.FS {
	t.Helper()
	return os.DirFS("../migrations")
}

func py(project, version, sha string) store.PyFile {
	return store.PyFile{Project: project, DisplayName: project, Version: version,
		Filename: project + "-" + version + "-py3-none-any.whl", SHA256: sha, Size: 10, UploadTime: time.Unix(1700000000, 0)}
}

func TestSnapshotsAndPrecedence(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open func(t *testing.T, migrations fs.FS) *db.DB) {
		ctx := t.Context()
		clock := testutil.NewClock(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
		s := store.New(open(t, migrations(t)), clock.Now)
		local, err := s.CreateSource(ctx, "pypi-local", store.LocalPython, "")
		if err != nil {
			t.Fatal(err)
		}
		mirror, err := s.CreateSource(ctx, "pypi-upstream", store.PyPIMirror, "http://127.0.0.1:1/simple")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRepo(ctx, "pypi", store.Python, ""); err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{"pypi-local", "pypi-upstream"} {
			if err := s.Subscribe(ctx, "pypi", src); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateSource(ctx, "pypi-local", store.LocalPython, ""); !errors.Is(err, store.ErrExists) {
			t.Errorf("duplicate source: %v", err)
		}
		if _, err := s.CreateRepo(ctx, "upload", store.Python, ""); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("reserved repo name: %v", err)
		}

		t1, _, err := s.AddPythonFiles(ctx, local, []store.PyFile{py("demo", "1.0", "aa")}, "upload", "")
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(48 * time.Hour)
		t2, _, err := s.AddPythonFiles(ctx, local, []store.PyFile{py("demo", "2.0", "bb")}, "upload", "")
		if err != nil {
			t.Fatal(err)
		}
		// The mirror also has "demo": the local source wins.
		if _, _, err := s.AddPythonFiles(ctx, mirror, []store.PyFile{py("demo", "9.0", "cc"), py("requests", "2.0", "dd")}, "sync", ""); err != nil {
			t.Fatal(err)
		}
		repo, err := s.Repo(ctx, "pypi")
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			snap  string
			files int
		}{
			{"latest", 2}, {"2026-05-01", 1}, {"2026-05-03", 2}, {itoa(t1), 1}, {itoa(t2), 2},
		}
		for _, tc := range cases {
			txn, err := s.Snapshot(ctx, tc.snap)
			if err != nil {
				t.Fatalf("snapshot %s: %v", tc.snap, err)
			}
			src, files, err := s.PythonProject(ctx, repo, txn, "demo")
			if err != nil || len(files) != tc.files || src.Name != "pypi-local" {
				t.Errorf("snapshot %s: %d files from %s (%v), want %d from pypi-local", tc.snap, len(files), src.Name, err, tc.files)
			}
		}
		for _, bad := range []string{"2026-04-30", "999", "-1", "yesterday"} {
			if _, err := s.Snapshot(ctx, bad); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("snapshot %q: %v, want not found", bad, err)
			}
		}
		latest, _ := s.Latest(ctx)
		names, err := s.PythonProjects(ctx, repo, latest)
		if err != nil || len(names) != 2 {
			t.Errorf("projects: %v %v", names, err)
		}
		// Same file again: no-op. Same name, other bytes: refused, nothing added.
		if txn, n, err := s.AddPythonFiles(ctx, local, []store.PyFile{py("demo", "1.0", "aa")}, "upload", ""); err != nil || txn != 0 || n != 0 {
			t.Errorf("re-upload: txn %d n %d %v", txn, n, err)
		}
		if _, _, err := s.AddPythonFiles(ctx, local, []store.PyFile{py("new", "1.0", "ee"), py("demo", "1.0", "ff")}, "upload", ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("conflicting re-upload: %v", err)
		}
		if after, _ := s.Latest(ctx); after != latest {
			t.Errorf("a refused upload made a transaction")
		}
		if _, _, err := s.PythonProject(ctx, repo, latest, "new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("half of a refused upload is visible: %v", err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
