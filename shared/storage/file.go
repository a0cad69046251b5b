package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ValidateName reports whether name is acceptable as a named file or
// sub-store: a slash-separated relative path with no empty, "." or ".."
// segments, no backslashes or NUL bytes. The segment ".tmp" is reserved
// everywhere (temp directories of the store and its sub-stores), and a
// first segment of "blobs" is reserved for content-addressed blobs, which
// must not be writable without digest verification. Errors wrap
// ErrInvalidName.
//
// ValidateName is purely lexical; the Store methods additionally reject
// names that resolve through a symbolic link leaving the root. Symbolic
// links inside the root are followed only if they are relative and stay
// inside it (the rule of os.Root); absolute ones are refused even when they
// point inside. Handlers may call ValidateName to refuse bad input early.
func ValidateName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("storage: name %q: %s: %w", name, why, ErrInvalidName)
	}
	switch {
	case name == "":
		return bad("empty")
	case strings.IndexByte(name, 0) >= 0:
		return bad("contains NUL")
	case strings.IndexByte(name, '\\') >= 0:
		// Rejected on every OS: a backslash is a separator on Windows,
		// and a name that means different paths on different systems
		// invites traversal bugs.
		return bad("contains backslash")
	case name[0] == '/':
		return bad("absolute")
	}
	for i, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == "." || seg == "..":
			return bad("dot segment")
		case seg == tmpDir:
			return bad("reserved segment " + tmpDir)
		case i == 0 && seg == blobDir:
			return bad("reserved prefix " + blobDir)
		}
	}
	// Belt and braces: also catches platform specifics such as Windows
	// volume names and reserved device names.
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return bad("not local")
	}
	return nil
}

// checkLinks rejects name if any existing prefix of it is a symbolic link
// that resolves outside the root (or is absolute, dangling or looping).
// The os.Root used for the actual operation would refuse such paths anyway,
// even if links change in between; this check exists so that callers get
// ErrInvalidName rather than an opaque error.
func checkLinks(r *os.Root, name string) error {
	segs := strings.Split(name, "/")
	for i := range segs {
		p := strings.Join(segs[:i+1], "/")
		fi, err := r.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // nothing deeper exists; the operation itself reports it
		}
		if err != nil {
			return fmt.Errorf("storage: name %q: %w", name, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		// Stat through the Root follows the link only within the root.
		if _, err := r.Stat(p); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("storage: name %q: %w", name, err)
			}
			return fmt.Errorf("storage: name %q: symlink %s leaves root or is dangling: %w", name, p, ErrInvalidName)
		}
	}
	return nil
}

// resolve validates name and opens the root for an operation on it.
func (s *Store) resolve(name string) (*os.Root, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r, err := s.open()
	if err != nil {
		return nil, err
	}
	if err := checkLinks(r, name); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// WriteFile atomically creates or replaces the named file with the content
// of r, creating parent directories as needed. name is slash-separated and
// relative to the root (see ValidateName). Limits, ctx and
// opt.ExpectedDigest behave as for Put. Readers see either the old content
// or the new, never a mix or a truncated file; on any error the old content
// (or absence) is kept. The returned Blob describes the content written.
func (s *Store) WriteFile(ctx context.Context, name string, r io.Reader, opt PutOptions) (Blob, error) {
	root, err := s.resolve(name)
	if err != nil {
		return Blob{}, err
	}
	defer root.Close()
	return s.write(ctx, root, "file", r, opt, filePerm, func(*os.Root, Blob) (string, bool, error) {
		return name, false, nil
	})
}

// OpenFile opens the named file for reading; the caller must close it. It
// returns ErrNotFound if the file does not exist.
func (s *Store) OpenFile(name string) (*os.File, error) {
	root, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	defer root.Close() // files opened from a Root outlive it
	f, err := root.Open(name)
	if err != nil {
		return nil, fileErr("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileErr("open", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: not a regular file", name)
	}
	return f, nil
}

// ReadFile returns the whole content of the named file; for small files
// such as manifests. Use OpenFile to stream large ones.
func (s *Store) ReadFile(name string) ([]byte, error) {
	f, err := s.OpenFile(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fileErr("read", name, err)
	}
	return b, nil
}

// RemoveFile removes the named file (or symbolic link); it returns
// ErrNotFound if it does not exist. Directories are not removed.
func (s *Store) RemoveFile(name string) error {
	root, err := s.resolve(name)
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	if err != nil {
		return fileErr("remove", name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("storage: remove %s: is a directory", name)
	}
	if err := root.Remove(name); err != nil {
		return fileErr("remove", name, err)
	}
	return nil
}

func fileErr(op, name string, err error) error {
	// ENOTDIR: a parent is a file, so the name cannot exist either.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("storage: %s %s: %w", op, name, ErrNotFound)
	}
	return fmt.Errorf("storage: %s %s: %w", op, name, err)
}
