package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExtractRsconnectBundles extracts tarballs rsconnect-python's own
// bundle code built (testdata/gen.sh): manifest first for deploy manifest,
// last for deploy html.
func TestExtractRsconnectBundles(t *testing.T) {
	tests := []struct {
		file  string
		mode  AppMode
		entry string
		files []string
	}{
		{"fastapi.tar.gz", ModeFastAPI, "app.py", []string{"app.py", "manifest.json", "requirements.txt"}},
		{"pkgapi.tar.gz", ModePythonAPI, "pkg/server.py", []string{"manifest.json", "pkg/__init__.py", "pkg/server.py", "requirements.txt"}},
		{"html.tar.gz", ModeStatic, "index.html", []string{"css/site.css", "index.html", "manifest.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "bundles", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m, dest, err := extractFresh(t, data, Limits{})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if m.Metadata.AppMode != tt.mode || m.Entry.File != tt.entry {
				t.Errorf("mode %q entry %q, want %q %q", m.Metadata.AppMode, m.Entry.File, tt.mode, tt.entry)
			}
			if got := listFiles(t, dest); !slices.Equal(got, tt.files) {
				t.Errorf("files = %v, want %v", got, tt.files)
			}
			im, files, err := Inspect(bytes.NewReader(data), Limits{})
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if !slices.Equal(files, tt.files) || im.Entry != m.Entry {
				t.Errorf("Inspect = %v %+v, want %v %+v", files, im.Entry, tt.files, m.Entry)
			}
		})
	}
}

func listFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestExtractLayouts builds the fastapi sample in the layouts clients and
// people produce, and checks that each lands the same way.
func TestExtractLayouts(t *testing.T) {
	first := appEntries(t, "fastapi", false)
	last := appEntries(t, "fastapi", true)
	want := []string{"app.py", "manifest.json", "requirements.txt"}
	tests := []struct {
		name    string
		entries []entry
		want    []string
	}{
		{"manifest first", first, want},
		{"manifest last", last, want},
		{"dot slash", prefixed("./", first), want},
		{"dot slash root dir entry", append([]entry{{name: "./", typ: tar.TypeDir}}, prefixed("./", last)...), want},
		{"wrapping dir", prefixed("myapp/", last), want},
		{"wrapping dir with entries", append([]entry{{name: "myapp/", typ: tar.TypeDir}}, prefixed("myapp/", first)...), want},
		{"dot slash wrapping dir", prefixed("./myapp/", first), want},
		{"two wrapping dirs", prefixed("outer/inner/", first), want},
		{"wrapper name inside", append(prefixed("app/", first), entry{name: "app/app/data.txt", body: "x"}),
			append(slices.Clone(want[:1]), "app/data.txt", "manifest.json", "requirements.txt")},
		{"subdirectories", append(slices.Clone(first), entry{name: "static/css/site.css", body: "p{}"}, entry{name: "data/", typ: tar.TypeDir}),
			[]string{"app.py", "manifest.json", "requirements.txt", "static/css/site.css"}},
		{"pax global header", append([]entry{{name: "pax_global_header", typ: tar.TypeXGlobalHeader}}, first...), want},
		{"directory listed after its files", append(prefixed("a/", first), entry{name: "a/", typ: tar.TypeDir}), want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tarGz(t, tt.entries...)
			m, dest, err := extractFresh(t, data, Limits{})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if m.Metadata.AppMode != ModeFastAPI || m.Entry.File != "app.py" {
				t.Errorf("manifest %+v", m)
			}
			if got := listFiles(t, dest); !slices.Equal(got, tt.want) {
				t.Errorf("files = %v, want %v", got, tt.want)
			}
			_, files, err := Inspect(bytes.NewReader(data), Limits{})
			if err != nil || !slices.Equal(files, tt.want) {
				t.Errorf("Inspect = %v, %v; want %v", files, err, tt.want)
			}
		})
	}
}

func TestExtractModes(t *testing.T) {
	m := `{"metadata":{"appmode":"python-streamlit","entrypoint":"app"},"python":{"package_manager":{"package_file":"requirements.txt"}}}`
	data := tarGz(t,
		entry{name: "manifest.json", body: m},
		entry{name: "requirements.txt", body: "streamlit\n", mode: 0o600},
		entry{name: "app.py", body: "print(1)\n", mode: 0o750},
		entry{name: "bin/run.sh", body: "#!/bin/sh\n", mode: 0o777},
		entry{name: "private/", typ: tar.TypeDir, mode: 0o700},
	)
	_, dest, err := extractFresh(t, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		"manifest.json": 0o644, "requirements.txt": 0o644, "app.py": 0o755,
		"bin": fs.ModeDir | 0o755, "bin/run.sh": 0o755, "private": fs.ModeDir | 0o755,
	}
	for name, mode := range want {
		fi, err := os.Lstat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
}

const fastapiManifest = `{"version":1,"metadata":{"appmode":"python-fastapi","entrypoint":"app:app"},"python":{"version":"3.12.4","package_manager":{"name":"pip","package_file":"requirements.txt"}}}`

// good is a valid bundle's entries, for building broken ones from.
var good = []entry{
	{name: "manifest.json", body: fastapiManifest},
	{name: "requirements.txt", body: "fastapi\n"},
	{name: "app.py", body: "app = 1\n"},
}

func with(extra ...entry) []entry { return append(slices.Clone(good), extra...) }

func TestExtractRejects(t *testing.T) {
	huge := Limits{}
	tests := []struct {
		name     string
		data     []byte
		limits   Limits
		want     string
		tooLarge bool
	}{
		{"traversal", tarGz(t, with(entry{name: "../x", body: "x"})...), huge, `"../x" has a ".." component`, false},
		{"traversal inside", tarGz(t, with(entry{name: "a/../../x", body: "x"})...), huge, `"a/../../x" has a ".." component`, false},
		{"dot slash traversal", tarGz(t, with(entry{name: "./../x", body: "x"})...), huge, `"./../x" has a ".." component`, false},
		{"absolute", tarGz(t, with(entry{name: "/etc/passwd", body: "root"})...), huge, `"/etc/passwd" is an absolute path`, false},
		{"symlink", tarGz(t, with(entry{name: "etc", typ: tar.TypeSymlink, link: "/etc"})...), huge, `"etc" is a symbolic link (to "/etc")`, false},
		{"symlink then write through", tarGz(t, append([]entry{{name: "d", typ: tar.TypeSymlink, link: "/tmp"}, {name: "d/x", body: "x"}}, good...)...), huge, "is a symbolic link", false},
		{"hard link", tarGz(t, with(entry{name: "h", typ: tar.TypeLink, link: "app.py"})...), huge, `"h" is a hard link (to "app.py")`, false},
		{"char device", tarGz(t, with(entry{name: "null", typ: tar.TypeChar})...), huge, `"null" is a device or named pipe`, false},
		{"block device", tarGz(t, with(entry{name: "sda", typ: tar.TypeBlock})...), huge, "is a device or named pipe", false},
		{"fifo", tarGz(t, with(entry{name: "pipe", typ: tar.TypeFifo})...), huge, "is a device or named pipe", false},
		{"contiguous file", tarGz(t, with(entry{name: "cont", typ: tar.TypeCont})...), huge, "tar entry type", false},
		{"huge declared size", tarGz(t, with(entry{name: "big.bin", body: "x", size: 3 << 30})...), huge, `"big.bin" is 3221225472 bytes, over the 2147483648-byte limit`, true},
		{"file over limit", tarGz(t, with(entry{name: "big.bin", body: strings.Repeat("x", 300)})...), Limits{MaxFileSize: 200}, `"big.bin" is 300 bytes, over the 200-byte limit`, true},
		{"total over limit", tarGz(t, with(entry{name: "a.bin", body: strings.Repeat("x", 300)})...), Limits{MaxSize: 400}, "unpacks to more than 400 bytes", true},
		{"too many files", tarGz(t, with(entry{name: "a"}, entry{name: "b"})...), Limits{MaxFiles: 4}, "more than 4 entries", true},
		{"duplicate", tarGz(t, with(entry{name: "app.py", body: "evil"})...), huge, `"app.py" appears more than once`, false},
		{"duplicate via dot slash", tarGz(t, with(entry{name: "./app.py", body: "evil"})...), huge, `"app.py" appears more than once`, false},
		{"file then dir", tarGz(t, with(entry{name: "app.py/", typ: tar.TypeDir})...), huge, `"app.py" appears more than once`, false},
		{"dir then file", tarGz(t, append([]entry{{name: "d/", typ: tar.TypeDir}, {name: "d", body: "x"}}, good...)...), huge, `"d" appears more than once`, false},
		{"inside a file", tarGz(t, with(entry{name: "app.py/x", body: "x"})...), huge, `"app.py/x" is inside "app.py", which is a file`, false},
		{"backslash", tarGz(t, with(entry{name: `..\x`, body: "x"})...), huge, "backslash", false},
		{"empty component", tarGz(t, with(entry{name: "a//b", body: "x"})...), huge, "not a clean relative path", false},
		{"not utf-8", tarGz(t, with(entry{name: "caf\xe9", body: "x"})...), huge, "not a UTF-8 file name", false},
		{"long name", tarGz(t, with(entry{name: strings.Repeat("n", 256), body: "x"})...), huge, "longer than 255 bytes", false},
		{"no manifest", tarGz(t, good[1:]...), huge, "bundle has no manifest.json at its top level", false},
		{"manifest beside a dir", tarGz(t, append(prefixed("app/", good), entry{name: "README.md", body: "x"})...), huge, "no manifest.json at its top level", false},
		{"manifest two levels, sibling", tarGz(t, append(prefixed("a/b/", good), entry{name: "a/c.txt", body: "x"})...), huge, "no manifest.json at its top level", false},
		{"manifest is a dir", tarGz(t, entry{name: "manifest.json/", typ: tar.TypeDir}, entry{name: "manifest.json/x", body: "{}"}), huge, "no manifest.json", false},
		{"empty archive", tarGz(t), huge, "bundle has no files", false},
		{"bad json", tarGz(t, entry{name: "manifest.json", body: `{"metadata":`}, good[1], good[2]), huge, "manifest.json is not valid JSON", false},
		{"unknown appmode", tarGz(t, entry{name: "manifest.json", body: `{"metadata":{"appmode":"python-flask"}}`}), huge,
			`metadata.appmode "python-flask" is not a Connect app mode (Flask apps are python-api)`, false},
		{"missing entrypoint file", tarGz(t, good[0], good[1], entry{name: "main.py", body: "x"}), huge,
			`metadata.entrypoint "app:app" needs "app.py" or "app/__init__.py" in the bundle`, false},
		{"missing requirements", tarGz(t, good[0], good[2]), huge,
			`python.package_manager.package_file "requirements.txt" needs "requirements.txt" in the bundle`, false},
		{"requirements is a dir", tarGz(t, good[0], good[2], entry{name: "requirements.txt/", typ: tar.TypeDir}), huge, `"requirements.txt"`, false},
		{"not gzip", []byte("PK\x03\x04 this is a zip"), huge, "not a gzip-compressed tar archive (.tar.gz)", false},
		{"plain tar", plainTar(t), huge, "not a gzip-compressed tar archive", false},
		{"empty upload", nil, huge, "bundle is empty", false},
		{"gzip of garbage", gzipOf(t, bytes.Repeat([]byte("garbage!"), 200)), huge, "not a valid .tar.gz", false},
		{"truncated", truncate(tarGz(t, with(entry{name: "data.bin", body: strings.Repeat("0123456789", 5000)})...)), huge, "truncated", false},
		{"corrupt crc", corruptTrailer(tarGz(t, good...)), huge, "not a valid .tar.gz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := extractFresh(t, tt.data, tt.limits)
			inv := asInvalid(t, err)
			if !strings.Contains(inv.Msg, tt.want) {
				t.Errorf("message %q\n does not contain %q", inv.Msg, tt.want)
			}
			if errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Errorf("errors.Is(ErrTooLarge) = %v, want %v", !tt.tooLarge, tt.tooLarge)
			}
			_, _, ierr := Inspect(bytes.NewReader(tt.data), tt.limits)
			if iinv := asInvalid(t, ierr); iinv.Msg != inv.Msg {
				t.Errorf("Inspect says %q, Extract %q", iinv.Msg, inv.Msg)
			}
		})
	}
}

func plainTar(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range good {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func gzipOf(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	gz := newGzip(&buf)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}

// truncate cuts an archive in the middle of its compressed data.
func truncate(b []byte) []byte { return b[:len(b)/2] }

// corruptTrailer breaks the gzip CRC, which only reading to the end finds.
func corruptTrailer(b []byte) []byte {
	b = slices.Clone(b)
	b[len(b)-8] ^= 0xff
	return b
}

func TestExtractDestNotEmpty(t *testing.T) {
	dest := t.TempDir()
	keep := filepath.Join(dest, "keep.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Extract(context.Background(), bytes.NewReader(tarGz(t, good...)), dest, Limits{})
	var inv *InvalidError
	if err == nil || errors.As(err, &inv) {
		t.Fatalf("err = %v, want a non-InvalidError", err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("caller's file: %q, %v", b, err)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(nil), filepath.Join(dest, "missing"), Limits{}); err == nil {
		t.Error("Extract into a missing directory succeeded")
	}
}

var errBoom = errors.New("connection reset")

// failingReader yields data and then fails, as a dropped upload does.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

func TestExtractSourceError(t *testing.T) {
	data := tarGz(t, with(entry{name: "data.bin", body: strings.Repeat("0123456789abcdef", 8000)})...)
	for _, cut := range []int{0, 5, len(data) / 2, len(data) - 1} {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		os.Mkdir(dest, 0o755)
		_, err := Extract(context.Background(), &failingReader{bytes.NewReader(data[:cut])}, dest, Limits{})
		var inv *InvalidError
		if !errors.Is(err, errBoom) || errors.As(err, &inv) {
			t.Errorf("cut %d: err = %v, want the reader's error, not *InvalidError", cut, err)
		}
		checkContained(t, parent, dest, true)
	}
}

// cancelAfter cancels ctx once n bytes have been read, mid-extraction.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestExtractCancel(t *testing.T) {
	data := tarGz(t, with(entry{name: "data.bin", body: strings.Repeat("0123456789abcdef", 100000)})...)
	for _, after := range []int{1, len(data) / 2} {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		os.Mkdir(dest, 0o755)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Extract(ctx, &cancelAfter{r: bytes.NewReader(data), n: after, cancel: cancel}, dest, Limits{})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after %d: err = %v, want context.Canceled", after, err)
		}
		checkContained(t, parent, dest, true)
	}
}
