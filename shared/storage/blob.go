package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

const digestPrefix = "sha256:"

// ParseDigest validates a SHA-256 digest, given as "sha256:<64 hex>" or as
// bare hex, and returns its 64 hex digits in lower case. Blob paths are
// only ever built from this result, so no caller-supplied text reaches the
// filesystem.
func ParseDigest(s string) (string, error) {
	h := strings.TrimPrefix(s, digestPrefix)
	if len(h) != 64 {
		return "", fmt.Errorf("storage: digest %q: %w", s, ErrInvalidDigest)
	}
	out := []byte(h)
	for i, c := range out {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			out[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("storage: digest %q: %w", s, ErrInvalidDigest)
		}
	}
	return string(out), nil
}

// blobName is the slash-separated path of a blob relative to the root;
// hex must come from ParseDigest.
func blobName(hex string) string {
	return blobDir + "/sha256/" + hex[:2] + "/" + hex
}

// Put stores the content of r as a blob named by its SHA-256 and returns
// its digest and size.
//
// The content is streamed to a temp file while hashed; reading stops with
// ErrTooLarge one byte past the size limit, and with ctx's error if ctx is
// done between chunks. If opt.ExpectedDigest is set and differs,
// ErrDigestMismatch is returned. On any error nothing is stored.
//
// If a blob with the same digest already exists, the new copy is discarded
// (deduplication). Concurrent Puts of the same content, from any number of
// goroutines or NFS clients, all succeed and leave exactly one file.
//
// A Delete of the same digest racing with Put may remove the blob right
// after Put found it; callers that garbage-collect blobs must serialize
// deletion with their own references (e.g. only delete blobs that are
// unreferenced in the database and older than a grace period).
func (s *Store) Put(ctx context.Context, r io.Reader, opt PutOptions) (Blob, error) {
	root, err := s.open()
	if err != nil {
		return Blob{}, err
	}
	defer root.Close()
	return s.write(ctx, root, "blob", r, opt, blobPerm, func(root *os.Root, b Blob) (string, bool, error) {
		name := blobName(strings.TrimPrefix(b.Digest, digestPrefix))
		// A same-named file of the right size was written by the same
		// discipline and holds the same bytes. One of the wrong size is
		// damage from outside this package: replace it.
		if fi, err := root.Stat(name); err == nil && fi.Mode().IsRegular() && fi.Size() == b.Size {
			return name, true, nil
		}
		return name, false, nil
	})
}

// Open opens the blob with the given digest for reading. The caller must
// close the file. It returns ErrInvalidDigest for a malformed digest and
// ErrNotFound if no such blob is stored.
func (s *Store) Open(digest string) (*os.File, Blob, error) {
	hex, err := ParseDigest(digest)
	if err != nil {
		return nil, Blob{}, err
	}
	root, err := s.open()
	if err != nil {
		return nil, Blob{}, err
	}
	defer root.Close() // files opened from a Root outlive it
	f, err := root.Open(blobName(hex))
	if err != nil {
		return nil, Blob{}, blobErr("open", hex, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Blob{}, blobErr("open", hex, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Blob{}, fmt.Errorf("storage: open blob sha256:%s: not a regular file", hex)
	}
	return f, Blob{Digest: digestPrefix + hex, Size: fi.Size()}, nil
}

// Stat reports the size of the blob with the given digest, or ErrNotFound.
func (s *Store) Stat(digest string) (Blob, error) {
	hex, err := ParseDigest(digest)
	if err != nil {
		return Blob{}, err
	}
	root, err := s.open()
	if err != nil {
		return Blob{}, err
	}
	defer root.Close()
	fi, err := root.Stat(blobName(hex))
	if err != nil {
		return Blob{}, blobErr("stat", hex, err)
	}
	if !fi.Mode().IsRegular() {
		return Blob{}, fmt.Errorf("storage: stat blob sha256:%s: not a regular file", hex)
	}
	return Blob{Digest: digestPrefix + hex, Size: fi.Size()}, nil
}

// Delete removes the blob with the given digest. It returns ErrNotFound if
// the blob is absent, so callers can tell a repeated delete apart; treat
// that as success where deletion should be idempotent. Readers that already
// have the blob open can keep reading it. The empty shard directory is
// left in place: removing it would race with a concurrent Put into it.
func (s *Store) Delete(digest string) error {
	hex, err := ParseDigest(digest)
	if err != nil {
		return err
	}
	root, err := s.open()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(blobName(hex)); err != nil {
		return blobErr("delete", hex, err)
	}
	return nil
}

func blobErr(op, hex string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %s blob sha256:%s: %w", op, hex, ErrNotFound)
	}
	return fmt.Errorf("storage: %s blob sha256:%s: %w", op, hex, err)
}
