package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/shared/db"
)

// PyFile is one Python distribution file in a source.
type PyFile struct {
	SourceID       string
	Project        string // normalized name
	DisplayName    string
	Version        string
	Filename       string
	SHA256         string
	Size           int64
	RequiresPython string
	Yanked         bool
	YankedReason   string
	MetadataSHA256 string // "" when there is no .metadata file
	UploadTime     time.Time
	Blob           string // storage digest; "" until a mirrored file is downloaded
	MetadataBlob   string
	UpstreamURL    string
	UpstreamMeta   bool // upstream serves the .metadata file
	AddedTxn       int64
}

const pyCols = `source_id, project, display_name, version, filename, sha256, size, requires_python, yanked, yanked_reason,
	metadata_sha256, upload_time, blob, metadata_blob, upstream_url, upstream_meta, added_txn`

func scanPy(row interface{ Scan(...any) error }) (PyFile, error) {
	var f PyFile
	var up int64
	err := row.Scan(&f.SourceID, &f.Project, &f.DisplayName, &f.Version, &f.Filename, &f.SHA256, &f.Size, &f.RequiresPython,
		&f.Yanked, &f.YankedReason, &f.MetadataSHA256, &up, &f.Blob, &f.MetadataBlob, &f.UpstreamURL, &f.UpstreamMeta, &f.AddedTxn)
	f.UploadTime = fromMS(up)
	return f, err
}

// AddPythonFiles records files in source as one transaction. A file whose
// name the source already has is skipped when its sha256 is the same (a
// retried upload, a re-synced mirror) and refused with ErrConflict when
// not. With nothing new, no transaction is made and txn is 0.
func (s *Store) AddPythonFiles(ctx context.Context, source Source, files []PyFile, action, detail string) (txn int64, added int, err error) {
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		var fresh []PyFile
		for _, f := range files {
			var sha string
			err := tx.QueryRowContext(ctx, `SELECT sha256 FROM python_files WHERE source_id = ? AND filename = ?`, source.ID, f.Filename).Scan(&sha)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				fresh = append(fresh, f)
			case err != nil:
				return err
			case !strings.EqualFold(sha, f.SHA256):
				return fmt.Errorf("%s already has %s with other content; a file name is never reused: %w", source.Name, f.Filename, ErrConflict)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		id, err := s.begin(ctx, tx, source.ID, action, detail)
		if err != nil {
			return err
		}
		for _, f := range fresh {
			_, err := tx.ExecContext(ctx, `INSERT INTO python_files (`+pyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				source.ID, f.Project, f.DisplayName, f.Version, f.Filename, strings.ToLower(f.SHA256), f.Size, f.RequiresPython,
				f.Yanked, f.YankedReason, f.MetadataSHA256, ms(f.UploadTime), f.Blob, f.MetadataBlob, f.UpstreamURL, f.UpstreamMeta, id)
			if err != nil {
				return fmt.Errorf("record %s: %w", f.Filename, err)
			}
		}
		txn, added = id, len(fresh)
		return nil
	})
	return txn, added, err
}

// SetPythonBlobs records where a mirrored file (and its metadata file) are
// stored once downloaded. Not a transaction: the file was already in the
// snapshot, only its bytes were not here yet.
func (s *Store) SetPythonBlobs(ctx context.Context, sourceID, filename, blob, metadataBlob string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE python_files SET
		blob = CASE WHEN ? <> '' THEN ? ELSE blob END,
		metadata_blob = CASE WHEN ? <> '' THEN ? ELSE metadata_blob END
		WHERE source_id = ? AND filename = ?`, blob, blob, metadataBlob, metadataBlob, sourceID, filename)
	return err
}

// PythonProjects lists the display names of the projects repo shows at txn.
func (s *Store) PythonProjects(ctx context.Context, repo Repo, txn int64) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, src := range repo.Sources {
		rows, err := s.db.QueryContext(ctx, `SELECT project, MIN(display_name) FROM python_files
			WHERE source_id = ? AND `+visible+` GROUP BY project ORDER BY project`, src.ID, txn, txn)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var p, name string
			if err := rows.Scan(&p, &name); err != nil {
				rows.Close()
				return nil, err
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, name)
			}
		}
		rows.Close()
	}
	return out, nil
}

// PythonProject returns a project's files at txn from the first source of
// repo that has the project: a later source never adds files to a project
// an earlier one has, so an upstream cannot slip a version in beside an
// internal package of the same name.
func (s *Store) PythonProject(ctx context.Context, repo Repo, txn int64, project string) (Source, []PyFile, error) {
	for _, src := range repo.Sources {
		files, err := s.pyFiles(ctx, `source_id = ? AND project = ? AND `+visible, src.ID, project, txn, txn)
		if err != nil {
			return Source{}, nil, err
		}
		if len(files) > 0 {
			return src, files, nil
		}
	}
	return Source{}, nil, fmt.Errorf("project %s: %w", project, ErrNotFound)
}

// PythonFilesOf returns every file source has for project, whatever the
// snapshot (the mirror compares upstream against it).
func (s *Store) PythonFilesOf(ctx context.Context, source Source, project string) ([]PyFile, error) {
	return s.pyFiles(ctx, `source_id = ? AND project = ?`, source.ID, project)
}

// PythonFile finds a file visible in repo at txn by its sha256 and name.
func (s *Store) PythonFile(ctx context.Context, repo Repo, txn int64, sha256, filename string) (Source, PyFile, error) {
	for _, src := range repo.Sources {
		files, err := s.pyFiles(ctx, `source_id = ? AND sha256 = ? AND filename = ? AND `+visible, src.ID, strings.ToLower(sha256), filename, txn, txn)
		if err != nil {
			return Source{}, PyFile{}, err
		}
		if len(files) > 0 {
			return src, files[0], nil
		}
	}
	return Source{}, PyFile{}, fmt.Errorf("file %s: %w", filename, ErrNotFound)
}

func (s *Store) pyFiles(ctx context.Context, where string, args ...any) ([]PyFile, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+pyCols+` FROM python_files WHERE `+where+` ORDER BY filename`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PyFile
	for rows.Next() {
		f, err := scanPy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// MirrorFetched says when source last asked upstream about project.
func (s *Store) MirrorFetched(ctx context.Context, source Source, project string) (at time.Time, found, ok bool, err error) {
	var when int64
	err = s.db.QueryRowContext(ctx, `SELECT fetched_at, found FROM mirror_projects WHERE source_id = ? AND project = ?`,
		source.ID, project).Scan(&when, &found)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, false, nil
	}
	return fromMS(when), found, err == nil, err
}

// SetMirrorFetched records that source asked upstream about project now.
func (s *Store) SetMirrorFetched(ctx context.Context, source Source, project string, found bool) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO mirror_projects (source_id, project, fetched_at, found) VALUES (?, ?, ?, ?)
		ON CONFLICT (source_id, project) DO UPDATE SET fetched_at = excluded.fetched_at, found = excluded.found`,
		source.ID, project, ms(s.now()), found)
	return err
}
