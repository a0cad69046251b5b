package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/atrium-suite/atrium/shared/storage"
)

// DefaultDownloadTimeout bounds one shared download when
// Fetcher.DownloadTimeout is zero. It is generous because wheels of a few
// gigabytes exist.
const DefaultDownloadTimeout = 30 * time.Minute

// Fetcher downloads files listed by an Upstream into a content-addressed
// store. It must not be copied after first use.
type Fetcher struct {
	Upstream
	Store *storage.Store
	// DownloadTimeout bounds one download from start to stored blob;
	// default DefaultDownloadTimeout.
	DownloadTimeout time.Duration
	// MaxFileSize caps one download in bytes; 0 leaves it to the store's
	// configured limit.
	MaxFileSize int64

	group singleflight.Group
}

// Download returns the blob holding f's content, downloading it from the
// upstream into the store if it is not there yet. When f.SHA256 is set the
// download is verified against it (a mismatch wraps
// storage.ErrDigestMismatch and stores nothing) and a blob already in the
// store is returned without any request. A file without an advertised
// digest is stored under whatever digest its bytes have.
//
// Concurrent calls for the same file share one upstream download. That
// download runs on a context detached from the callers' (keeping their
// values), bounded by DownloadTimeout, so a caller that gives up returns
// its context's error without failing the others.
func (f *Fetcher) Download(ctx context.Context, file File) (storage.Blob, error) {
	return f.fetch(ctx, file.URL, file.SHA256)
}

// DownloadMetadata returns the blob holding f's core metadata file
// (f.URL+".metadata", PEP 658/714), verified against f.CoreMetadataSHA256
// when advertised. It returns ErrNoMetadata if the upstream does not
// advertise one, and otherwise behaves like Download.
func (f *Fetcher) DownloadMetadata(ctx context.Context, file File) (storage.Blob, error) {
	if !file.CoreMetadata {
		return storage.Blob{}, fmt.Errorf("mirror: metadata of %q: %w", file.Filename, ErrNoMetadata)
	}
	return f.fetch(ctx, file.URL+".metadata", file.CoreMetadataSHA256)
}

func (f *Fetcher) fetch(ctx context.Context, rawURL, sha string) (storage.Blob, error) {
	if f.Store == nil {
		return storage.Blob{}, errors.New("mirror: Fetcher.Store is nil")
	}
	if rawURL == "" {
		return storage.Blob{}, errors.New("mirror: file has no URL")
	}
	key := "url:" + rawURL
	if sha != "" {
		hex, err := parseHex(sha)
		if err != nil {
			return storage.Blob{}, fmt.Errorf("mirror: %s: %w", redact(rawURL), err)
		}
		sha = hex
		key = "sha256:" + hex
		if b, ok, err := f.stored(sha); err != nil || ok {
			return b, err
		}
	}
	ch := f.group.DoChan(key, func() (any, error) {
		// Another flight may have finished between the Stat above and
		// DoChan; checking again keeps that race from costing a request.
		if sha != "" {
			if b, ok, err := f.stored(sha); err != nil || ok {
				return b, err
			}
		}
		timeout := f.DownloadTimeout
		if timeout <= 0 {
			timeout = DefaultDownloadTimeout
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return f.download(dctx, rawURL, sha)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return storage.Blob{}, r.Err
		}
		return r.Val.(storage.Blob), nil
	case <-ctx.Done():
		return storage.Blob{}, fmt.Errorf("mirror: download %s: %w", redact(rawURL), ctx.Err())
	}
}

// stored reports whether the blob with the given hex digest is in the store.
func (f *Fetcher) stored(hex string) (storage.Blob, bool, error) {
	b, err := f.Store.Stat("sha256:" + hex)
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, storage.ErrNotFound):
		return storage.Blob{}, false, nil
	default:
		return storage.Blob{}, false, fmt.Errorf("mirror: %w", err)
	}
}

func (f *Fetcher) download(ctx context.Context, rawURL, sha string) (storage.Blob, error) {
	where := redact(rawURL)
	resp, err := f.get(ctx, rawURL, "")
	if err != nil {
		return storage.Blob{}, upstreamErr(context.Background(), "download "+where, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return storage.Blob{}, fmt.Errorf("mirror: download %s: %w", where, ErrNotFound)
	default:
		return storage.Blob{}, fmt.Errorf("mirror: download %s: %w: HTTP %s", where, ErrUnreachable, resp.Status)
	}
	opt := storage.PutOptions{MaxSize: f.MaxFileSize}
	if sha != "" {
		opt.ExpectedDigest = "sha256:" + sha
	}
	b, err := f.Store.Put(ctx, upstreamReader{resp.Body}, opt)
	if err != nil {
		return storage.Blob{}, fmt.Errorf("mirror: download %s: %w", where, err)
	}
	return b, nil
}

// upstreamReader marks read errors as the upstream's, so a connection reset
// mid-download is reported as ErrUnreachable rather than a storage failure.
type upstreamReader struct{ r io.Reader }

func (u upstreamReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: reading body: %w", ErrUnreachable, err)
	}
	return n, err
}
