package connect

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/atrium-suite/atrium/shared/db"
)

// The store's part for the packages API (migrations/0004_packages.sql):
// which environment each bundle runs in, and what is installed in each.

// langPython is the language of Python packages, as Connect names it in
// the packages API (lower case there; the runtime caches API says
// "Python").
const langPython = "python"

// bundlePackage is one package installed in the environment a bundle runs
// in.
type bundlePackage struct {
	ContentGUID     string
	BundleID        int64
	Language        string
	LanguageVersion string
	Name            string // normalized (pyPackage)
	Version         string
}

// recordBundleEnv records that bundleID of content guid runs in env.
func (s *store) recordBundleEnv(ctx context.Context, guid string, bundleID int64, env pyEnv) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO bundle_environments (bundle_id, content_guid, env_key, language, language_version, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (bundle_id) DO UPDATE SET env_key = excluded.env_key, language = excluded.language,
			language_version = excluded.language_version, recorded_at = excluded.recorded_at`,
		bundleID, guid, env.key, langPython, env.version, s.nowMS()); err != nil {
		return fmt.Errorf("record environment: %w", err)
	}
	return nil
}

// envPackagesKnown reports whether the packages of environment key are
// recorded.
func (s *store) envPackagesKnown(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM environment_packages WHERE env_key = ?`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("environment packages: %w", err)
	}
	return n > 0, nil
}

// setEnvPackages replaces the packages of environment key.
func (s *store) setEnvPackages(ctx context.Context, key string, pkgs []pyPackage) error {
	err := s.db.InTx(ctx, func(tx *db.Tx) error { return writeEnvPackages(ctx, tx, key, pkgs) })
	if err != nil {
		return fmt.Errorf("record environment packages: %w", err)
	}
	return nil
}

func writeEnvPackages(ctx context.Context, tx *db.Tx, key string, pkgs []pyPackage) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM environment_packages WHERE env_key = ?`, key); err != nil {
		return err
	}
	for _, p := range pkgs {
		// An upsert: two deploys sharing the environment may record it at
		// once, and PostgreSQL's DELETE does not see the other's rows.
		if _, err := tx.ExecContext(ctx, `INSERT INTO environment_packages (env_key, name, version) VALUES (?, ?, ?)
			ON CONFLICT (env_key, name) DO UPDATE SET version = excluded.version`, key, p.Name, p.Version); err != nil {
			return err
		}
	}
	return nil
}

const bundlePackageQuery = `SELECT e.content_guid, e.bundle_id, e.language, e.language_version, p.name, p.version
	FROM bundle_environments e JOIN environment_packages p ON p.env_key = e.env_key`

// collectPackages scans the rows, sorted by content, bundle and name
// (here rather than in SQL: PostgreSQL's collation may order "-" unlike
// SQLite).
func collectPackages(rows *sql.Rows) ([]bundlePackage, error) {
	pkgs, err := collect(rows, scanBundlePackage)
	slices.SortStableFunc(pkgs, func(a, b bundlePackage) int {
		return cmp.Or(cmp.Compare(a.ContentGUID, b.ContentGUID), cmp.Compare(a.BundleID, b.BundleID),
			cmp.Compare(a.Name, b.Name))
	})
	return pkgs, err
}

func scanBundlePackage(r scanner) (bundlePackage, error) {
	var p bundlePackage
	err := r.Scan(&p.ContentGUID, &p.BundleID, &p.Language, &p.LanguageVersion, &p.Name, &p.Version)
	return p, err
}

// bundlePackages lists the packages of one bundle's environment, by
// normalized name.
func (s *store) bundlePackages(ctx context.Context, guid string, bundleID int64) ([]bundlePackage, error) {
	rows, err := s.db.QueryContext(ctx, bundlePackageQuery+` WHERE e.content_guid = ? AND e.bundle_id = ?`, guid, bundleID)
	if err != nil {
		return nil, fmt.Errorf("bundle packages: %w", err)
	}
	return collectPackages(rows)
}

// allPackages lists the packages of every bundle with a recorded
// environment, by content, bundle and normalized name.
func (s *store) allPackages(ctx context.Context) ([]bundlePackage, error) {
	rows, err := s.db.QueryContext(ctx, bundlePackageQuery)
	if err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	return collectPackages(rows)
}

// contentUsingEnv lists the content with a bundle recorded as running in
// environment key, by name.
func (s *store) contentUsingEnv(ctx context.Context, key string) ([]Content, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+contentCols+` FROM content WHERE guid IN
		(SELECT content_guid FROM bundle_environments WHERE env_key = ?) ORDER BY name, guid`, key)
	if err != nil {
		return nil, fmt.Errorf("content using environment: %w", err)
	}
	return collect(rows, scanContent)
}
