package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/storage"
)

func newStore(t *testing.T, maxSize int64) *storage.Store {
	t.Helper()
	s, err := storage.New(storage.Config{Root: filepath.Join(t.TempDir(), "data"), MaxSize: maxSize})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// payload returns n bytes that are not all alike, so truncation and
// reordering change the digest.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

var errBoom = errors.New("boom")

// brokenReader yields the first n bytes of data, then fails with err, as a
// client connection dropping mid-upload would.
type brokenReader struct {
	data []byte
	n    int
	err  error
}

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	m := copy(p, r.data[:min(r.n, len(r.data))])
	r.data, r.n = r.data[m:], r.n-m
	return m, nil
}

// cancelAfter serves endless data and cancels ctx once more than n bytes
// have been read, simulating a request cancelled mid-stream.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (r *cancelAfter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n -= len(p)
	if r.n < 0 {
		r.cancel()
	}
	return len(p), nil
}

// files lists the regular files under dir (relative to it), recursively.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// assertClean checks that no temp file and no blob is visible.
func assertClean(t *testing.T, s *storage.Store) {
	t.Helper()
	if f := files(t, filepath.Join(s.Root(), ".tmp")); len(f) != 0 {
		t.Errorf("temp files left behind: %v", f)
	}
	if f := files(t, filepath.Join(s.Root(), "blobs")); len(f) != 0 {
		t.Errorf("blobs visible: %v", f)
	}
}

func TestNewValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  storage.Config
	}{
		{"empty root", storage.Config{}},
		{"negative max", storage.Config{Root: t.TempDir(), MaxSize: -1}},
		{"root is a file", storage.Config{Root: file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := storage.New(tc.cfg); err == nil {
				t.Fatal("New succeeded, want error")
			}
		})
	}
}

func TestNewCreatesRoot(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := storage.New(storage.Config{Root: "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "a", "b"); s.Root() != want {
		t.Errorf("Root() = %q, want %q", s.Root(), want)
	}
	for _, p := range []string{s.Root(), filepath.Join(s.Root(), ".tmp")} {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			t.Errorf("%s not a directory: %v", p, err)
		}
	}
}

func TestPutOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{0, 1, 128<<10 - 1, 128 << 10, 1<<20 + 17} {
		s := newStore(t, 0)
		data := payload(size)
		b, err := s.Put(ctx, bytes.NewReader(data), storage.PutOptions{})
		if err != nil {
			t.Fatalf("size %d: Put: %v", size, err)
		}
		if want := (storage.Blob{Digest: digestOf(data), Size: int64(size)}); b != want {
			t.Fatalf("size %d: Put = %+v, want %+v", size, b, want)
		}
		f, ob, err := s.Open(b.Digest)
		if err != nil {
			t.Fatalf("size %d: Open: %v", size, err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, data) || ob != b {
			t.Fatalf("size %d: Open read %d bytes (err %v), blob %+v; want %d bytes, %+v", size, len(got), err, ob, size, b)
		}
		if st, err := s.Stat(b.Digest); err != nil || st != b {
			t.Fatalf("size %d: Stat = %+v, %v", size, st, err)
		}
		// Blob layout is part of the on-disk format; operators rely on it.
		h := strings.TrimPrefix(b.Digest, "sha256:")
		if _, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", h[:2], h)); err != nil {
			t.Fatalf("size %d: blob not at expected path: %v", size, err)
		}
		if f := files(t, filepath.Join(s.Root(), ".tmp")); len(f) != 0 {
			t.Fatalf("size %d: temp files left: %v", size, f)
		}
	}
}

func TestPutDedupe(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	data := payload(5000)
	b1, err := s.Put(ctx, bytes.NewReader(data), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := s.Put(ctx, bytes.NewReader(data), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b1 != b2 {
		t.Fatalf("second Put = %+v, want %+v", b2, b1)
	}
	if f := files(t, s.Root()); len(f) != 1 {
		t.Fatalf("files after two identical Puts: %v, want exactly one", f)
	}
}

func TestPutConcurrentSameContent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	data := payload(300 << 10)
	const n = 8
	var (
		wg      sync.WaitGroup
		results [n]storage.Blob
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Put(ctx, bytes.NewReader(data), storage.PutOptions{})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Put %d: %v", i, errs[i])
		}
		if results[i].Digest != digestOf(data) {
			t.Errorf("Put %d: digest %s, want %s", i, results[i].Digest, digestOf(data))
		}
	}
	if f := files(t, s.Root()); len(f) != 1 {
		t.Fatalf("files after concurrent Puts: %v, want exactly one", f)
	}
	f, _, err := s.Open(digestOf(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, data) {
		t.Fatal("stored content differs")
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	b, err := s.Put(ctx, strings.NewReader("hello"), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b.Digest); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(b.Digest); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(b.Digest); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(b.Digest); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
	// Storing it again after deletion works.
	if _, err := s.Put(ctx, strings.NewReader("hello"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(b.Digest); err != nil {
		t.Fatal(err)
	}
}

func TestParseDigest(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, want string
	}{
		{"sha256:" + h, h},
		{h, h},
		{"sha256:" + strings.ToUpper(h), h},
		{"", ""},
		{"sha256:", ""},
		{"sha512:" + h, ""},
		{"SHA256:" + h, ""},
		{"sha256:" + h[:63], ""},
		{"sha256:" + h + "0", ""},
		{"sha256:" + strings.Repeat("g", 64), ""},
		{"sha256:../../../../../../etc/passwd" + strings.Repeat("a", 29), ""},
		{"sha256:" + h[:62] + "/a", ""},
		{" " + h[1:], ""},
	} {
		got, err := storage.ParseDigest(tc.in)
		if tc.want == "" {
			if !errors.Is(err, storage.ErrInvalidDigest) {
				t.Errorf("ParseDigest(%q) = %q, %v; want ErrInvalidDigest", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDigest(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestInvalidDigestRefused(t *testing.T) {
	s := newStore(t, 0)
	for _, d := range []string{"", "sha256:../../x", "../" + strings.Repeat("a", 61), "md5:abc"} {
		if _, _, err := s.Open(d); !errors.Is(err, storage.ErrInvalidDigest) {
			t.Errorf("Open(%q) = %v, want ErrInvalidDigest", d, err)
		}
		if _, err := s.Stat(d); !errors.Is(err, storage.ErrInvalidDigest) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidDigest", d, err)
		}
		if err := s.Delete(d); !errors.Is(err, storage.ErrInvalidDigest) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidDigest", d, err)
		}
	}
	_, err := s.Put(context.Background(), strings.NewReader("x"), storage.PutOptions{ExpectedDigest: "nope"})
	if !errors.Is(err, storage.ErrInvalidDigest) {
		t.Errorf("Put with malformed ExpectedDigest = %v, want ErrInvalidDigest", err)
	}
	assertClean(t, s)
}

func TestPutInterrupted(t *testing.T) {
	data := payload(1 << 20)
	for _, tc := range []struct {
		name    string
		reader  func(cancel context.CancelFunc) io.Reader
		wantErr error
	}{
		{"reader fails at start", func(context.CancelFunc) io.Reader {
			return &brokenReader{data: data, n: 0, err: errBoom}
		}, errBoom},
		{"reader fails mid chunk", func(context.CancelFunc) io.Reader {
			return &brokenReader{data: data, n: 1000, err: errBoom}
		}, errBoom},
		{"reader fails after several chunks", func(context.CancelFunc) io.Reader {
			return &brokenReader{data: data, n: 700 << 10, err: errBoom}
		}, errBoom},
		{"unexpected EOF", func(context.CancelFunc) io.Reader {
			return &brokenReader{data: data, n: 4096, err: io.ErrUnexpectedEOF}
		}, io.ErrUnexpectedEOF},
		{"context cancelled midway", func(cancel context.CancelFunc) io.Reader {
			return &cancelAfter{n: 500 << 10, cancel: cancel}
		}, context.Canceled},
		{"context cancelled before start", func(cancel context.CancelFunc) io.Reader {
			cancel()
			return bytes.NewReader(data)
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, err := s.Put(ctx, tc.reader(cancel), storage.PutOptions{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put = %+v, %v; want %v", b, err, tc.wantErr)
			}
			if b != (storage.Blob{}) {
				t.Errorf("Put returned blob %+v alongside error", b)
			}
			assertClean(t, s)
		})
	}
}

func TestPutDigestCheck(t *testing.T) {
	ctx := context.Background()
	data := payload(200 << 10)
	good := digestOf(data)
	bad := digestOf([]byte("something else"))
	for _, tc := range []struct {
		name     string
		expected string
		wantErr  error
	}{
		{"prefixed", good, nil},
		{"bare", strings.TrimPrefix(good, "sha256:"), nil},
		{"upper-case bare", strings.ToUpper(strings.TrimPrefix(good, "sha256:")), nil},
		{"mismatch", bad, storage.ErrDigestMismatch},
		{"mismatch bare", strings.TrimPrefix(bad, "sha256:"), storage.ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, 0)
			b, err := s.Put(ctx, bytes.NewReader(data), storage.PutOptions{ExpectedDigest: tc.expected})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				assertClean(t, s)
				if _, err := s.Stat(bad); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Stat(expected digest) = %v, want ErrNotFound", err)
				}
				return
			}
			if b.Digest != good {
				t.Fatalf("digest %s, want %s", b.Digest, good)
			}
			if _, err := s.Stat(good); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		config  int64 // Config.MaxSize
		opt     int64 // PutOptions.MaxSize
		size    int
		wantErr error
	}{
		{"exactly config limit", 1000, 0, 1000, nil},
		{"one over config limit", 1000, 0, 1001, storage.ErrTooLarge},
		{"far over config limit", 1000, 0, 1 << 20, storage.ErrTooLarge},
		{"empty under limit", 1000, 0, 0, nil},
		{"no limit", 0, 0, 1 << 20, nil},
		{"option overrides (lower)", 1000, 10, 11, storage.ErrTooLarge},
		{"option overrides (higher)", 1000, 1 << 20, 1 << 20, nil},
		{"option exactly", 0, 256 << 10, 256 << 10, nil},
		{"option one over, multi-chunk", 0, 256 << 10, 256<<10 + 1, storage.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.config)
			data := payload(tc.size)
			opt := storage.PutOptions{MaxSize: tc.opt}
			b, err := s.Put(ctx, bytes.NewReader(data), opt)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put = %+v, %v; want %v", b, err, tc.wantErr)
			}
			if tc.wantErr != nil {
				assertClean(t, s)
			} else if b.Size != int64(tc.size) {
				t.Fatalf("size %d, want %d", b.Size, tc.size)
			}

			// WriteFile enforces the same limits.
			_, err = s.WriteFile(ctx, "f", bytes.NewReader(data), opt)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteFile = %v; want %v", err, tc.wantErr)
			}
			if _, err := os.Lstat(filepath.Join(s.Root(), "f")); (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("file exists = %v after WriteFile error %v", err == nil, tc.wantErr)
			}
		})
	}
}

// TestSizeLimitStopsReading checks that an oversized upload is refused
// after reading just past the limit, not after consuming all of it.
func TestSizeLimitStopsReading(t *testing.T) {
	s := newStore(t, 1000)
	r := &countingReader{}
	if _, err := s.Put(context.Background(), r, storage.PutOptions{}); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Put = %v, want ErrTooLarge", err)
	}
	if r.n > 1001 {
		t.Fatalf("read %d bytes, want at most 1001", r.n)
	}
	assertClean(t, s)
}

// countingReader is an endless reader that counts what it hands out.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += len(p)
	return len(p), nil
}

func TestSweep(t *testing.T) {
	s := newStore(t, 0)
	tmp := filepath.Join(s.Root(), ".tmp")
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"blob-old1", "file-old2"} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "blob-inflight"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "somedir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(tmp, "somedir"), old, old); err != nil {
		t.Fatal(err)
	}

	n, err := s.Sweep(time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2, nil", n, err)
	}
	if got := files(t, tmp); len(got) != 1 || got[0] != "blob-inflight" {
		t.Fatalf("temp files after Sweep: %v, want [blob-inflight]", got)
	}
	if _, err := os.Stat(filepath.Join(tmp, "somedir")); err != nil {
		t.Fatalf("Sweep touched a directory: %v", err)
	}
	if n, err := s.Sweep(time.Hour); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0, nil", n, err)
	}
	// Writes keep working after a sweep, and with .tmp gone altogether.
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(0); err != nil || n != 0 {
		t.Fatalf("Sweep without .tmp = %d, %v", n, err)
	}
	if _, err := s.Put(context.Background(), strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatalf("Put after .tmp removed: %v", err)
	}
}

func TestSub(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 10)
	c, err := s.Sub("connect")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(s.Root(), "connect"); c.Root() != want {
		t.Fatalf("Sub root %q, want %q", c.Root(), want)
	}
	if _, err := os.Stat(filepath.Join(c.Root(), ".tmp")); err != nil {
		t.Fatalf("sub-store temp dir: %v", err)
	}
	b, err := c.Put(ctx, strings.NewReader("bundle"), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(b.Digest); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("blob of sub-store visible in parent: %v", err)
	}
	if _, err := c.Put(ctx, strings.NewReader("more than ten bytes"), storage.PutOptions{}); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("sub-store did not inherit MaxSize: %v", err)
	}
	nested, err := s.Sub("workbench/homes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nested.WriteFile(ctx, "alice/.bashrc", strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadFile("workbench/homes/alice/.bashrc"); err != nil || string(got) != "x" {
		t.Fatalf("ReadFile via parent = %q, %v", got, err)
	}
	for _, bad := range []string{"", "..", "../x", "/abs", "a//b", ".tmp", "blobs", "connect/.tmp"} {
		if _, err := s.Sub(bad); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Sub(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}
