package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/atrium-suite/atrium/shared/storage"
)

func TestWriteFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	data := payload(300 << 10)
	b, err := s.WriteFile(ctx, "bundles/app-1/bundle.tar.gz", bytes.NewReader(data), storage.PutOptions{ExpectedDigest: digestOf(data)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Digest != digestOf(data) || b.Size != int64(len(data)) {
		t.Fatalf("WriteFile = %+v", b)
	}
	got, err := s.ReadFile("bundles/app-1/bundle.tar.gz")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFile: %d bytes, %v", len(got), err)
	}
	fi, err := os.Stat(filepath.Join(s.Root(), "bundles", "app-1", "bundle.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o640 {
		t.Errorf("mode %v, want 0640", perm)
	}
	if err := s.RemoveFile("bundles/app-1/bundle.tar.gz"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenFile("bundles/app-1/bundle.tar.gz"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("OpenFile after RemoveFile = %v, want ErrNotFound", err)
	}
	if err := s.RemoveFile("bundles/app-1/bundle.tar.gz"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second RemoveFile = %v, want ErrNotFound", err)
	}
	if err := s.RemoveFile("bundles/app-1"); err == nil {
		t.Fatal("RemoveFile removed a directory")
	}
	if _, err := s.OpenFile("bundles"); err == nil {
		t.Fatal("OpenFile opened a directory")
	}
	if _, err := s.WriteFile(ctx, "bundles", strings.NewReader("x"), storage.PutOptions{}); err == nil {
		t.Fatal("WriteFile replaced a directory")
	}
	if f := files(t, filepath.Join(s.Root(), ".tmp")); len(f) != 0 {
		t.Fatalf("temp files left: %v", f)
	}
}

func TestWriteFileInterruptedKeepsOld(t *testing.T) {
	ctx := context.Background()
	old := bytes.Repeat([]byte("old "), 1000)
	newData := payload(1 << 20)
	for _, tc := range []struct {
		name    string
		opt     storage.PutOptions
		reader  func(cancel context.CancelFunc) io.Reader
		wantErr error
	}{
		{"reader fails", storage.PutOptions{}, func(context.CancelFunc) io.Reader {
			return &brokenReader{data: newData, n: 600 << 10, err: errBoom}
		}, errBoom},
		{"context cancelled", storage.PutOptions{}, func(cancel context.CancelFunc) io.Reader {
			return &cancelAfter{n: 300 << 10, cancel: cancel}
		}, context.Canceled},
		{"digest mismatch", storage.PutOptions{ExpectedDigest: digestOf(old)}, func(context.CancelFunc) io.Reader {
			return bytes.NewReader(newData)
		}, storage.ErrDigestMismatch},
		{"too large", storage.PutOptions{MaxSize: 1000}, func(context.CancelFunc) io.Reader {
			return bytes.NewReader(newData)
		}, storage.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, 0)
			if _, err := s.WriteFile(ctx, "dir/manifest.json", bytes.NewReader(old), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := s.WriteFile(ctx, "dir/manifest.json", tc.reader(cancel), tc.opt)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteFile = %v, want %v", err, tc.wantErr)
			}
			got, err := s.ReadFile("dir/manifest.json")
			if err != nil || !bytes.Equal(got, old) {
				t.Fatalf("after failed replace: %d bytes, %v; want the old %d bytes", len(got), err, len(old))
			}
			// A failed first write leaves no file at all.
			_, err = s.WriteFile(ctx, "dir/other", tc.reader(cancel), tc.opt)
			if err == nil {
				t.Fatal("second WriteFile succeeded")
			}
			if _, err := s.OpenFile("dir/other"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("OpenFile after failed write = %v, want ErrNotFound", err)
			}
			if f := files(t, filepath.Join(s.Root(), ".tmp")); len(f) != 0 {
				t.Fatalf("temp files left: %v", f)
			}
		})
	}
}

// TestWriteFileAtomicReplace replaces a 1 MiB file of all 'a' with all 'b'
// and back, while readers check that every read sees one uniform, complete
// version.
func TestWriteFileAtomicReplace(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	const size = 1 << 20
	versions := [][]byte{bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)}
	if _, err := s.WriteFile(ctx, "shared/file", bytes.NewReader(versions[0]), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	var (
		done  atomic.Bool
		reads atomic.Int64
		wg    sync.WaitGroup
	)
	for range 3 {
		wg.Go(func() {
			for first := true; first || !done.Load(); first = false {
				got, err := s.ReadFile("shared/file")
				if err != nil {
					t.Errorf("ReadFile: %v", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("read a mixed or partial file: %d bytes, %d 'a', %d 'b'",
						len(got), bytes.Count(got, []byte{'a'}), bytes.Count(got, []byte{'b'}))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 30 {
		// A slow writer (small reads) widens the window a non-atomic
		// implementation would expose.
		r := io.LimitReader(bytes.NewReader(versions[(i+1)%2]), size)
		if _, err := s.WriteFile(ctx, "shared/file", oneByteChunks{r, 4096}, storage.PutOptions{}); err != nil {
			t.Errorf("WriteFile %d: %v", i, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d consistent reads", reads.Load())
}

// oneByteChunks hands out data in chunks of at most n bytes.
type oneByteChunks struct {
	r io.Reader
	n int
}

func (c oneByteChunks) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

func TestNameValidation(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := s.Root()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "real", "sub"), 0o750))
	must(os.WriteFile(filepath.Join(root, "real", "file"), []byte("inside"), 0o640))
	must(os.Symlink(outside, filepath.Join(root, "abs-out")))                         // absolute, outside
	must(os.Symlink("../../"+filepath.Base(outside), filepath.Join(root, "rel-out"))) // relative, outside
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "real", "leak")))
	must(os.Symlink("real", filepath.Join(root, "in")))                          // relative, inside: fine
	must(os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "abs-in"))) // absolute: os.Root refuses
	must(os.Symlink("missing", filepath.Join(root, "dangling")))
	must(os.Symlink("..", filepath.Join(root, "real", "up")))     // to the root itself: still inside
	must(os.Symlink("../..", filepath.Join(root, "real", "up2"))) // one level above the root
	must(os.Symlink("loop", filepath.Join(root, "loop")))

	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"x", true},
		{"a/b/c.txt", true},
		{"..x/x..", true},
		{".hidden/file", true},
		{"connect/blobs/x", true},
		{"real/file", true},
		{"in/file", true},
		{"in/sub/new", true},
		{"real/up/real/file", true},

		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/../x", false},
		{"./x", false},
		{"a/./x", false},
		{"/etc/passwd", false},
		{"/", false},
		{"a//b", false},
		{"a/", false},
		{"a\\b", false},
		{"..\\x", false},
		{"a\x00b", false},
		{".tmp/x", false},
		{"a/.tmp/x", false},
		{"blobs/sha256/ab/cd", false},
		{"blobs", false},
		{"abs-out/secret", false},
		{"abs-out/new", false},
		{"rel-out/secret", false},
		{"real/leak", false},
		{"abs-in/file", false},
		{"dangling/x", false},
		{"dangling", false},
		{"real/up2/x", false},
		{"loop/x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, werr := s.WriteFile(ctx, tc.name, strings.NewReader("w"), storage.PutOptions{})
			f, oerr := s.OpenFile(tc.name)
			if f != nil {
				f.Close()
			}
			if tc.ok {
				for op, err := range map[string]error{"WriteFile": werr, "OpenFile": oerr} {
					if err != nil {
						t.Errorf("%s(%q) = %v, want success", op, tc.name, err)
					}
				}
				if err := s.RemoveFile(tc.name); err != nil {
					t.Errorf("RemoveFile(%q) = %v", tc.name, err)
				}
				return
			}
			_, serr := s.Sub(tc.name)
			rerr := s.RemoveFile(tc.name)
			for op, err := range map[string]error{"WriteFile": werr, "OpenFile": oerr, "Sub": serr, "RemoveFile": rerr} {
				if !errors.Is(err, storage.ErrInvalidName) {
					t.Errorf("%s(%q) = %v, want ErrInvalidName", op, tc.name, err)
				}
			}
		})
	}

	// Nothing was written or removed outside the root.
	if got := files(t, outside); len(got) != 1 || got[0] != "secret" {
		t.Fatalf("outside dir now holds %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "secret" {
		t.Fatalf("outside file changed: %q, %v", b, err)
	}
}

func FuzzValidName(f *testing.F) {
	for _, seed := range []string{
		"x", "a/b", "../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", ".", "..",
		"a/.", "a/..", ".tmp", "x/.tmp", "blobs/x", "a\x00b", "...", "a/...", "C:x", "~/x",
	} {
		f.Add(seed)
	}
	root := filepath.Join(f.TempDir(), "data")
	s, err := storage.New(storage.Config{Root: root})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := storage.ValidateName(name)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, not ErrInvalidName", name, err)
			}
			if _, err := s.OpenFile(name); !errors.Is(err, storage.ErrInvalidName) {
				t.Fatalf("ValidateName rejects %q but OpenFile says %v", name, err)
			}
			return
		}
		// Property: an accepted name joined to the root stays strictly
		// within it, and joining does not reinterpret it.
		p := filepath.Join(root, filepath.FromSlash(name))
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || !filepath.IsLocal(rel) || !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("accepted %q escapes or is the root: %q (rel %q, %v)", name, p, rel, err)
		}
		if filepath.ToSlash(rel) != name {
			t.Fatalf("accepted %q is not canonical: joins as %q", name, rel)
		}
		// The store agrees it is a valid name (there are no symlinks here).
		if _, err := s.OpenFile(name); errors.Is(err, storage.ErrInvalidName) {
			t.Fatalf("ValidateName accepts %q but OpenFile says %v", name, err)
		}
	})
}
