package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// entry is one archive member for tarGz. A zero typ is a regular file;
// size, when set, is the declared size (the body is then written only as
// far as it goes, leaving the archive cut off there).
type entry struct {
	name string
	body string
	mode int64
	typ  byte
	link string
	size int64
}

// tarGz builds a gzip'd tar of entries, as a publisher's client would.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ == tar.TypeXGlobalHeader {
			// What git archive writes first: the commit id.
			h = &tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: map[string]string{"comment": "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
		if e.size != 0 {
			// A declared size the body does not fill: stop here, as an
			// attacker's archive would.
			if err := gz.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appEntries reads a sample app from testdata/apps as archive entries,
// manifest.json first unless manifestLast.
func appEntries(t testing.TB, app string, manifestLast bool) []entry {
	t.Helper()
	dir := filepath.Join("testdata", "apps", app)
	var out []entry
	var manifest entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := entry{name: filepath.ToSlash(rel), body: string(data)}
		if e.name == "manifest.json" {
			manifest = e
		} else {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if manifest.name == "" {
		t.Fatalf("%s has no manifest.json", dir)
	}
	if manifestLast {
		return append(out, manifest)
	}
	return append([]entry{manifest}, out...)
}

// prefixed renames entries with a prefix ("./", "myapp/").
func prefixed(prefix string, es []entry) []entry {
	out := slices.Clone(es)
	for i := range out {
		out[i].name = prefix + out[i].name
	}
	return out
}

// extractFresh extracts data into dest, a fresh directory alone inside its
// own temporary directory, and checks what every Extract must guarantee:
// nothing appears beside dest, and a failed extraction leaves dest empty.
func extractFresh(t testing.TB, data []byte, l Limits) (Manifest, string, error) {
	t.Helper()
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := Extract(context.Background(), bytes.NewReader(data), dest, l)
	checkContained(t, parent, dest, err != nil)
	return m, dest, err
}

func checkContained(t testing.TB, parent, dest string, failed bool) {
	t.Helper()
	beside, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(beside) != 1 || beside[0].Name() != "dest" {
		t.Fatalf("extraction wrote beside dest: %v", beside)
	}
	inside, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	if failed && len(inside) != 0 {
		t.Fatalf("failed extraction left %d entries in dest", len(inside))
	}
	err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			t.Errorf("%s has mode %v; only files and directories may be written", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func asInvalid(t testing.TB, err error) *InvalidError {
	t.Helper()
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v (%T), want *InvalidError", err, err)
	}
	return inv
}

func newGzip(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }
