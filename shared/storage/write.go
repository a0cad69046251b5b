package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// PutOptions tunes a single Put or WriteFile.
type PutOptions struct {
	// ExpectedDigest, if set ("sha256:<hex>" or bare hex), is compared with
	// the digest of the bytes read; on mismatch nothing is stored.
	ExpectedDigest string
	// MaxSize overrides Config.MaxSize for this write when > 0.
	MaxSize int64
}

// Blob describes stored content.
type Blob struct {
	Digest string // "sha256:<64 lowercase hex>"
	Size   int64
}

// copyBufSize is the streaming chunk size; ctx is checked once per chunk.
const copyBufSize = 128 << 10

// target decides, once the content is known, where it goes. It returns the
// slash-separated destination relative to the root, or skip=true if the
// content is already stored there (the temp file is then discarded).
type target func(r *os.Root, b Blob) (dest string, skip bool, err error)

// write runs the temp + hash + fsync + rename discipline described in the
// package documentation. Until the rename succeeds, every return path
// removes the temp file, so nothing partial is ever visible under a real
// name.
func (s *Store) write(ctx context.Context, r *os.Root, kind string, src io.Reader, opt PutOptions, perm fs.FileMode, to target) (Blob, error) {
	var want string
	if opt.ExpectedDigest != "" {
		h, err := ParseDigest(opt.ExpectedDigest)
		if err != nil {
			return Blob{}, fmt.Errorf("storage: expected digest: %w", err)
		}
		want = h
	}
	limit := s.maxSize
	if opt.MaxSize > 0 {
		limit = opt.MaxSize
	}

	f, tmp, err := createTemp(r, kind)
	if err != nil {
		return Blob{}, err
	}
	committed, closed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !committed {
			// Best effort: if this fails too, Sweep gets it later. The
			// file is under .tmp, so it is never visible as content.
			r.Remove(tmp)
		}
	}()

	b, err := copyHashed(ctx, f, src, limit)
	if err != nil {
		return Blob{}, err
	}
	if want != "" && b.Digest != "sha256:"+want {
		return Blob{}, fmt.Errorf("storage: got %s, want sha256:%s: %w", b.Digest, want, ErrDigestMismatch)
	}
	dest, skip, err := to(r, b)
	if err != nil {
		return Blob{}, err
	}
	if skip {
		return b, nil
	}

	// Explicit fchmod: the mode given at creation is reduced by the umask,
	// and the temp file is created private (0600) while it is incomplete.
	if err := f.Chmod(perm); err != nil {
		return Blob{}, fmt.Errorf("storage: chmod temp: %w", err)
	}
	// fsync before rename: otherwise a crash after the rename's directory
	// entry reaches disk could leave the final name pointing at a file
	// whose data blocks never did (zero-length or garbage content).
	if err := f.Sync(); err != nil {
		return Blob{}, fmt.Errorf("storage: sync temp: %w", err)
	}
	closed = true
	// On NFS, close flushes outstanding writes and reports their errors
	// (close-to-open consistency), so its error must not be ignored.
	if err := f.Close(); err != nil {
		return Blob{}, fmt.Errorf("storage: close temp: %w", err)
	}
	dir := path.Dir(dest)
	if err := ensureDir(r, dir); err != nil {
		return Blob{}, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	if err := r.Rename(tmp, dest); err != nil {
		return Blob{}, fmt.Errorf("storage: rename into place: %w", err)
	}
	committed = true
	// The content is now complete and visible; a failure here only means
	// the rename may not survive a crash, which the caller should hear of.
	if err := syncDir(r, dir); err != nil {
		return b, err
	}
	return b, nil
}

// createTemp creates a new private file under .tmp. The name is random
// (128 bits) and opened with O_EXCL, so concurrent writers, including other
// processes on other NFS clients, never share a temp file.
func createTemp(r *os.Root, kind string) (*os.File, string, error) {
	name := tmpDir + "/" + kind + "-" + rand.Text()
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := r.OpenFile(name, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// .tmp was removed behind our back (e.g. by a careless cleanup);
		// recreate it rather than failing every write from now on.
		if err = ensureDir(r, tmpDir); err == nil {
			f, err = r.OpenFile(name, flags, 0o600)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("storage: create temp: %w", err)
	}
	return f, name, nil
}

// copyHashed streams src into w while hashing, reading at most limit+1
// bytes (so an oversized upload is detected without being consumed in
// full) and checking ctx between chunks. A Read that blocks is not
// interrupted by ctx; callers serving network clients should rely on the
// connection's own deadlines for that.
func copyHashed(ctx context.Context, w io.Writer, src io.Reader, limit int64) (Blob, error) {
	if limit > 0 && limit < math.MaxInt64 {
		src = io.LimitReader(src, limit+1)
	}
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return Blob{}, fmt.Errorf("storage: write interrupted: %w", err)
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			n += int64(m)
			if limit > 0 && n > limit {
				return Blob{}, fmt.Errorf("storage: over %d bytes: %w", limit, ErrTooLarge)
			}
			h.Write(buf[:m])
			if _, err := w.Write(buf[:m]); err != nil {
				return Blob{}, fmt.Errorf("storage: write temp: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Blob{}, fmt.Errorf("storage: read: %w", rerr)
		}
	}
	return Blob{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// ensureDir creates the slash-separated directory dir and any missing
// parents, fsyncing the parent of each directory it creates so that the
// new entries survive a crash along with the file renamed into them.
func ensureDir(r *os.Root, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	if fi, err := r.Stat(dir); err == nil && fi.IsDir() {
		return nil // fast path: the directory almost always exists
	}
	segs := strings.Split(dir, "/")
	for i := range segs {
		p := strings.Join(segs[:i+1], "/")
		err := r.Mkdir(p, dirPerm)
		switch {
		case err == nil:
			if err := syncDir(r, path.Dir(p)); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Created concurrently, or already there; it must be a
			// directory (possibly via a symlink inside the root).
			fi, err := r.Stat(p)
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s: not a directory", p)
			}
		default:
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory so that entries created or renamed in it are
// durable. Some filesystems cannot fsync a directory (EINVAL, ENOTSUP);
// there it is skipped, as nothing better is possible.
func syncDir(r *os.Root, dir string) error {
	d, err := r.Open(dir)
	if err != nil {
		return fmt.Errorf("storage: sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("storage: sync dir %s: %w", dir, err)
	}
	return nil
}

// Sweep removes temp files last modified more than olderThan ago: writes
// abandoned by a crash, where no deferred cleanup ran. It returns how many
// it removed.
//
// A temp file's mtime advances with every chunk written, so a slow but live
// upload is not swept unless it stalls for olderThan. If it is swept anyway,
// the writer's rename fails and it returns an error; nothing partial becomes
// visible. On NFS the mtime comes from the server's clock, so olderThan
// should be generous (an hour) to absorb clock skew.
func (s *Store) Sweep(olderThan time.Duration) (int, error) {
	r, err := s.open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	d, err := r.Open(tmpDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: sweep: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("storage: sweep: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // only ever files here; leave anything else alone
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // committed or removed since ReadDir
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !info.ModTime().Before(cutoff) {
			continue
		}
		err = r.Remove(tmpDir + "/" + e.Name())
		switch {
		case err == nil:
			n++
		case errors.Is(err, fs.ErrNotExist):
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("storage: sweep: %w", err)
	}
	return n, nil
}
