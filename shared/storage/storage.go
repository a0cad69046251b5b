// Package storage manages Atrium's data directory: the place on local disk
// or on an NFS mount where Connect keeps published content bundles,
// Package Manager keeps wheels and R source tarballs, and Workbench keeps
// user homes.
//
// It provides two kinds of storage under one root:
//
//   - content-addressed blobs, named by the SHA-256 of their bytes
//     (Put, Open, Stat, Delete), so identical uploads are stored once and
//     every read can be checked against the name it was asked for;
//   - named files at slash-separated relative paths (WriteFile, OpenFile,
//     ReadFile, RemoveFile) for data that is addressed by name, not content.
//
// Every write follows the same discipline, so that no reader, and no
// process started after a crash, ever sees a half-written file:
//
//  1. the input is streamed into a fresh temporary file under Root/.tmp,
//     hashed on the way and cut off at the size limit;
//  2. the digest is checked against the expected one, if any;
//  3. the temporary file is fsynced, so its bytes are on stable storage
//     before any name points at them;
//  4. it is renamed onto its final name, which atomically replaces whatever
//     was there before;
//  5. the parent directory is fsynced, so the rename itself survives a crash.
//
// Any failure before step 4 removes the temporary file, and the final name
// either does not exist or still holds its previous content. Temporary files
// orphaned by a crash (where no cleanup could run) are only ever under
// Root/.tmp, which no read path looks at; Sweep removes them.
//
// All file access goes through an [os.Root], so a path can never leave the
// root even if symbolic links inside it are changed while an operation runs.
// Names and digests are validated before any path is built from them.
//
// A Store holds no open files or locks and is safe for concurrent use by
// multiple goroutines, and by multiple processes sharing one root over NFS.
package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Errors returned (wrapped) by this package; test for them with errors.Is.
var (
	// ErrNotFound: the blob or named file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: the input exceeded the size limit.
	ErrTooLarge = errors.New("too large")
	// ErrDigestMismatch: the input's SHA-256 differed from the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrInvalidDigest: the digest is not "sha256:<64 hex>" or bare 64 hex.
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrInvalidName: the name is not a clean relative path inside the root,
	// or resolves through a symbolic link that leaves the root.
	ErrInvalidName = errors.New("invalid name")
)

const (
	// tmpDir holds in-flight writes. It lives inside the root rather than in
	// os.TempDir because rename(2) is only atomic within one filesystem: a
	// temp file on local /tmp could not be renamed onto an NFS-mounted root
	// (EXDEV), and a copy would reintroduce the half-written window.
	tmpDir = ".tmp"
	// blobDir holds content-addressed blobs as blobs/sha256/<2 hex>/<64 hex>.
	// The two-hex fan-out keeps directories small (256 shards), which
	// matters for NFS directory lookups and for tools like ls and rsync.
	blobDir = "blobs"

	dirPerm  fs.FileMode = 0o750
	filePerm fs.FileMode = 0o640
	// Blobs are immutable once written; making them read-only guards
	// against accidental in-place modification by other tools.
	blobPerm fs.FileMode = 0o440
)

// Config configures a Store.
type Config struct {
	// Root is the data directory. It is made absolute and created with
	// mode 0750 if missing.
	Root string
	// MaxSize is the default per-write limit in bytes; 0 means no limit.
	// PutOptions.MaxSize overrides it for a single write.
	MaxSize int64
}

// Store is a data directory. See the package documentation.
type Store struct {
	root    string // absolute, cleaned
	maxSize int64
}

// New validates cfg, creates the root and its temp directory if needed,
// and returns a Store for it.
func New(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("storage: config: Root is required")
	}
	if cfg.MaxSize < 0 {
		return nil, fmt.Errorf("storage: config: MaxSize %d is negative", cfg.MaxSize)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("storage: config: root %q: %w", cfg.Root, err)
	}
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, fmt.Errorf("storage: create root: %w", err)
	}
	s := &Store{root: root, maxSize: cfg.MaxSize}
	r, err := s.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := ensureDir(r, tmpDir); err != nil {
		return nil, fmt.Errorf("storage: create temp dir: %w", err)
	}
	return s, nil
}

// Root returns the absolute path of the data directory.
func (s *Store) Root() string { return s.root }

// Sub returns a Store rooted at the sub-directory name (a product's area,
// such as "connect" or "packagemanager"), creating it if needed. name obeys
// the same rules as WriteFile names. The sub-store inherits MaxSize and has
// its own temp directory, so renames stay within one filesystem even if the
// sub-directory is a separate mount.
func (s *Store) Sub(name string) (*Store, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r, err := s.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := checkLinks(r, name); err != nil {
		return nil, err
	}
	if err := ensureDir(r, name); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", name, err)
	}
	return New(Config{Root: filepath.Join(s.root, filepath.FromSlash(name)), MaxSize: s.maxSize})
}

// open opens the root afresh for one operation. Holding no descriptor
// between operations means a Store needs no Close, and keeps working if an
// NFS root is remounted (a long-held directory handle would go stale).
func (s *Store) open() (*os.Root, error) {
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, fmt.Errorf("storage: open root: %w", err)
	}
	return r, nil
}
