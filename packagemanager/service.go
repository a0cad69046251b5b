package packagemanager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/inputerr"
	"github.com/atrium-suite/atrium/shared/storage"
)

// Service is Package Manager's logic without HTTP: what the server and the
// `atrium pm` commands share, so a package added from the command line and
// one uploaded by twine go through the same checks.
type Service struct {
	Store *store.Store
	Files *storage.Store
	db    *db.DB
	cfg   config.Config
	log   *slog.Logger
	// MaxUpload caps one package file.
	MaxUpload int64
	mirrors   mirrors
}

// OpenService opens Package Manager's database and files as the config
// says, for the command line.
func OpenService(ctx context.Context, cfg config.Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mig, err := migrationsFS()
	if err != nil {
		return nil, err
	}
	d, err := db.OpenSuite(ctx, cfg.Shared, config.PackageManager, mig, log)
	if err != nil {
		return nil, err
	}
	files, err := storage.New(storage.Config{Root: filepath.Join(cfg.ProductDataDir(config.PackageManager), "files")})
	if err != nil {
		d.Close()
		return nil, err
	}
	s := newService(cfg, d, files, log)
	s.db = d
	return s, nil
}

func newService(cfg config.Config, d *db.DB, files *storage.Store, log *slog.Logger) *Service {
	return &Service{Store: store.New(d, nil), Files: files, cfg: cfg, log: log, MaxUpload: int64(cfg.PackageManager.MaxBodyBytes)}
}

// Close closes what OpenService opened.
func (s *Service) Close() error {
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}

// spool copies r into a temporary file inside the data dir (so a large
// upload is never held in memory), up to the upload limit, and returns it
// rewound with its sha256. The caller closes and removes it.
func (s *Service) spool(r io.Reader) (*os.File, string, int64, error) {
	f, err := s.tempFile()
	if err != nil {
		return nil, "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, s.MaxUpload+1))
	if err == nil && n > s.MaxUpload {
		err = inputerr.TooLargef("the file is larger than the limit of %d bytes", s.MaxUpload)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", 0, err
	}
	return f, hex.EncodeToString(h.Sum(nil)), n, nil
}

// tempFile is a new temporary file in the data dir's temp area, which
// storage.Sweep cleans up after a crash.
func (s *Service) tempFile() (*os.File, error) {
	dir := filepath.Join(s.Files.Root(), ".tmp")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, "upload-*")
}

func discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// InputError is bad input from a client, shown to it as is; the parsers'
// refusals (pypi, cran) are the same type.
type InputError = inputerr.Error

// now is the service's clock.
func (s *Service) now() time.Time { return time.Now() }

var errNotLocal = errors.New("not a local source")
