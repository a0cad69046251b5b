package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	for _, pattern := range []string{"testdata/apps/*/manifest.json", "testdata/manifests/*.json"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(py(`{"appmode":"python-shiny","entrypoint":"shiny.express.app:a_2f__2e__2e__2f_b"}`)))
	f.Add([]byte(`{"metadata":{"appmode":"static","primary_html":"a/../../b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			asInvalid(t, err)
			return
		}
		if !m.Metadata.AppMode.Known() {
			t.Fatalf("accepted app mode %q", m.Metadata.AppMode)
		}
		// Every path the runtime will join to the bundle directory must
		// stay inside it.
		if err := m.Resolve(func(name string) bool {
			if !fs.ValidPath(name) {
				t.Fatalf("manifest names %q, outside the bundle", name)
			}
			return true
		}); err != nil {
			t.Fatalf("Resolve with every file present: %v", err)
		}
		if m.Entry.File != "" && !fs.ValidPath(m.Entry.File) {
			t.Fatalf("entry file %q", m.Entry.File)
		}
	})
}

// FuzzExtract feeds Extract random uploads (compressed) and mutated tars
// that the harness compresses (!compressed), so that mutations reach tar
// headers instead of dying at the gzip CRC. Whatever the input, nothing may
// be written outside dest, only files and directories inside it, and a
// failure must leave dest empty (extractFresh checks all three).
func FuzzExtract(f *testing.F) {
	paths, _ := filepath.Glob("testdata/bundles/*.tar.gz")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, true)
		f.Add(gunzip(f, data), false)
	}
	seeds := [][]entry{
		good,
		prefixed("./", good),
		prefixed("app/", good),
		prefixed("a/b/", with(entry{name: "a/b/a/x", body: "x"})),
		with(entry{name: "../escape", body: "x"}),
		with(entry{name: "/abs", body: "x"}),
		with(entry{name: "ln", typ: tar.TypeSymlink, link: "../../.."}),
		with(entry{name: "hl", typ: tar.TypeLink, link: "app.py"}),
		with(entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/f", body: "x", mode: 0o755}),
	}
	for _, s := range seeds {
		data := tarGz(f, s...)
		f.Add(data, true)
		f.Add(gunzip(f, data), false)
	}
	f.Add([]byte("not a bundle"), true)
	limits := Limits{MaxSize: 1 << 20, MaxFiles: 64, MaxFileSize: 1 << 19}
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		if !compressed {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			gz.Write(data)
			gz.Close()
			data = buf.Bytes()
		}
		m, dest, err := extractFresh(t, data, limits)
		if err != nil {
			asInvalid(t, err)
			return
		}
		if !m.Metadata.AppMode.Known() {
			t.Fatalf("accepted app mode %q", m.Metadata.AppMode)
		}
		// Inspect must agree with what Extract laid out.
		_, files, err := Inspect(bytes.NewReader(data), limits)
		if err != nil {
			t.Fatalf("Extract succeeded, Inspect: %v", err)
		}
		if got := listFiles(t, dest); !slices.Equal(got, files) {
			t.Fatalf("on disk %v, Inspect %v", got, files)
		}
	})
}

func gunzip(tb testing.TB, data []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(zr); err != nil && !errors.Is(err, gzip.ErrChecksum) {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
