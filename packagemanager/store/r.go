package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/atrium-suite/atrium/shared/db"
)

// RPackage is one R source package in a source.
type RPackage struct {
	SourceID, Package, Version, Filename, MD5, SHA256 string
	Size                                              int64
	Entry                                             json.RawMessage // the PACKAGES entry, as the caller encoded it
	Blob                                              string
	AddedTxn                                          int64
}

// AddRPackage records pkg in source as one transaction; the same filename
// with the same content is a no-op (txn 0), with other content ErrConflict.
func (s *Store) AddRPackage(ctx context.Context, source Source, pkg RPackage, detail string) (txn int64, err error) {
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		var sha string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM r_packages WHERE source_id = ? AND filename = ?`, source.ID, pkg.Filename).Scan(&sha)
		if err == nil {
			if !strings.EqualFold(sha, pkg.SHA256) {
				return fmt.Errorf("%s already has %s with other content; a file name is never reused: %w", source.Name, pkg.Filename, ErrConflict)
			}
			return nil
		}
		id, err := s.begin(ctx, tx, source.ID, "add", detail)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO r_packages (source_id, package, version, filename, md5, sha256, size, fields, blob, added_txn)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			source.ID, pkg.Package, pkg.Version, pkg.Filename, pkg.MD5, strings.ToLower(pkg.SHA256), pkg.Size, string(pkg.Entry), pkg.Blob, id)
		txn = id
		return err
	})
	return txn, err
}

// RPackages returns every package version repo shows at txn: for each
// package the first source that has it, all its versions.
func (s *Store) RPackages(ctx context.Context, repo Repo, txn int64) ([]RPackage, error) {
	seen := map[string]bool{}
	var out []RPackage
	for _, src := range repo.Sources {
		rows, err := s.db.QueryContext(ctx, `SELECT source_id, package, version, filename, md5, sha256, size, fields, blob, added_txn
			FROM r_packages WHERE source_id = ? AND `+visible+` ORDER BY package, added_txn`, src.ID, txn, txn)
		if err != nil {
			return nil, err
		}
		var mine []RPackage
		for rows.Next() {
			var p RPackage
			var fields string
			if err := rows.Scan(&p.SourceID, &p.Package, &p.Version, &p.Filename, &p.MD5, &p.SHA256, &p.Size, &fields, &p.Blob, &p.AddedTxn); err != nil {
				rows.Close()
				return nil, err
			}
			p.Entry = json.RawMessage(fields)
			mine = append(mine, p)
		}
		rows.Close()
		for _, p := range mine {
			if !seen[p.Package] || sourceOf(out, p.Package) == src.ID {
				out = append(out, p)
			}
		}
		for _, p := range mine {
			seen[p.Package] = true
		}
	}
	return out, nil
}

func sourceOf(pkgs []RPackage, name string) string {
	for _, p := range pkgs {
		if p.Package == name {
			return p.SourceID
		}
	}
	return ""
}
