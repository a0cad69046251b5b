package pypi

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func inspectBytes(l InspectLimits, filename string, b []byte) (Dist, error) {
	return l.Inspect(filename, bytes.NewReader(b), int64(len(b)))
}

func TestInspectRealDists(t *testing.T) {
	dir := realDists(t)
	tests := []struct {
		file        string
		name, ver   string
		filetype    string
		pyver       string
		reqPy       string
		requiresDst []string
	}{
		{"demo_pkg-1.0.0-py3-none-any.whl", "demo-pkg", "1.0.0", FiletypeWheel, "py3", ">=3.8", []string{"packaging>=20", `requests>=2; extra == "http"`}},
		// setuptools < 68 leaves Requires-Dist out of an sdist's PKG-INFO;
		// newer ones write it. Either is real.
		{"demo-pkg-1.0.0.tar.gz", "demo-pkg", "1.0.0", FiletypeSdist, "source", ">=3.8", nil},
		{"Zope.Thing-2.0rc1-py3-none-any.whl", "Zope.Thing", "2.0rc1", FiletypeWheel, "py3", "<4,>=3.7", nil},
		{"Zope.Thing-2.0rc1.tar.gz", "Zope.Thing", "2.0rc1", FiletypeSdist, "source", "<4,>=3.7", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, tt.file))
			if err != nil {
				entries, _ := os.ReadDir(dir)
				t.Fatalf("%v (built: %v)", err, entries)
			}
			defer f.Close()
			st, _ := f.Stat()
			d, err := Inspect(tt.file, f, st.Size())
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if d.Name != tt.name || d.Version != tt.ver || d.Filetype != tt.filetype || d.PythonVersion != tt.pyver ||
				d.Filename != tt.file || tt.requiresDst != nil && !slices.Equal(d.RequiresDist, tt.requiresDst) {
				t.Errorf("got %+v", d)
			}
			// Tools differ on "<4,>=3.7" vs ">=3.7, <4"; compare loosely.
			if strings.ReplaceAll(d.RequiresPython, " ", "") != tt.reqPy && !(strings.Contains(d.RequiresPython, ">=3.7") && strings.Contains(d.RequiresPython, "<4")) {
				t.Errorf("RequiresPython = %q, want %q", d.RequiresPython, tt.reqPy)
			}
			if !bytes.HasPrefix(d.Metadata, []byte("Metadata-Version: ")) || d.MetadataVersion == "" {
				t.Errorf("Metadata = %q", d.Metadata)
			}
			if d.HasCoreMetadataFile() != (tt.filetype == FiletypeWheel) {
				t.Errorf("HasCoreMetadataFile = %v", d.HasCoreMetadataFile())
			}
		})
	}
}

// TestInspectRefuses feeds hand-built bad archives; each must be refused
// with an *InvalidError whose message names the problem.
func TestInspectRefuses(t *testing.T) {
	meta := metadataFile("demo-pkg", "1.0")
	wheelInfo := []entry{
		{name: "demo_pkg-1.0.dist-info/METADATA", body: meta},
		{name: "demo_pkg-1.0.dist-info/WHEEL", body: "Wheel-Version: 1.0\n"},
	}
	small := InspectLimits{MaxTotalSize: 1 << 20, MaxEntries: 10, MaxMetadataSize: 1 << 10}
	tests := []struct {
		name     string
		filename string
		data     []byte
		limits   InspectLimits
		want     string // substring of the message
		tooLarge bool
	}{
		{name: "zip with ../ path", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "../../evil.py", body: "x"}), want: `escapes the archive with ".."`},
		{name: "zip with absolute path", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "/etc/cron.d/evil", body: "x"}), want: "absolute path"},
		{name: "zip with drive letter", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "C:/evil", body: "x"}), want: "absolute path"},
		{name: "zip with backslash", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: `..\evil`, body: "x"}), want: "backslash"},
		{name: "zip with symlink", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "demo_pkg/passwd", body: "/etc/passwd", mode: os.ModeSymlink | 0o777}), want: "not a regular file"},
		{name: "zip with duplicate entry", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "demo_pkg/__init__.py", body: "evil"}), want: "twice"},
		{name: "wheel name mismatch", filename: "other-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: "other-1.0.dist-info/METADATA", body: meta}, entry{name: "other-1.0.dist-info/WHEEL", body: "x"}),
			want: "wheel metadata says name 'demo-pkg' but the filename says 'other'"},
		{name: "wheel version mismatch", filename: "demo_pkg-1.1-py3-none-any.whl",
			data: buildZip(t, entry{name: "demo_pkg-1.1.dist-info/METADATA", body: meta}, entry{name: "demo_pkg-1.1.dist-info/WHEEL", body: "x"}),
			want: "wheel metadata says version '1.0' but the filename says '1.1'"},
		{name: "wheel 1.0 vs 1.0.0 is a mismatch", filename: "demo_pkg-1.0.0-py3-none-any.whl",
			data: buildZip(t, entry{name: "demo_pkg-1.0.0.dist-info/METADATA", body: meta}, entry{name: "demo_pkg-1.0.0.dist-info/WHEEL", body: "x"}),
			want: "says version '1.0' but the filename says '1.0.0'"},
		{name: "dist-info dir mismatch", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: "demo_pkg-2.0.dist-info/METADATA", body: meta}, entry{name: "demo_pkg-2.0.dist-info/WHEEL", body: "x"}),
			want: "demo_pkg-2.0.dist-info directory does not match"},
		{name: "missing METADATA", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: "demo_pkg-1.0.dist-info/WHEEL", body: "x"}), want: "wheel has no demo_pkg-1.0.dist-info/METADATA"},
		{name: "METADATA not at top", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: "sub/demo_pkg-1.0.dist-info/METADATA", body: meta}), want: "no .dist-info directory"},
		{name: "two dist-info dirs", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: goodWheel(t, entry{name: "evil-1.0.dist-info/METADATA", body: meta}), want: "more than one .dist-info"},
		{name: "missing WHEEL", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, wheelInfo[0]), want: "WHEEL"},
		{name: "metadata without Name", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: wheelInfo[0].name, body: "Metadata-Version: 2.1\nVersion: 1.0\n"}, wheelInfo[1]), want: "no Name"},
		{name: "metadata with bad version", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: wheelInfo[0].name, body: "Metadata-Version: 2.1\nName: demo-pkg\nVersion: one\n"}, wheelInfo[1]), want: "not a valid PEP 440 version"},
		{name: "metadata version 3", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: buildZip(t, entry{name: wheelInfo[0].name, body: "Metadata-Version: 3.0\nName: demo-pkg\nVersion: 1.0\n"}, wheelInfo[1]), want: "Metadata-Version \"3.0\""},
		{name: "metadata too large", filename: "demo_pkg-1.0-py3-none-any.whl", limits: small,
			data: buildZip(t, entry{name: wheelInfo[0].name, body: meta + strings.Repeat("x", 2<<10)}, wheelInfo[1]), want: "larger than", tooLarge: true},
		{name: "too many entries", filename: "demo_pkg-1.0-py3-none-any.whl", limits: small,
			data: goodWheel(t, manyEntries(20)...), want: "entries", tooLarge: true},
		{name: "zip bomb declared sizes", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: zipWithDeclaredSize(t, 1<<40), want: "uncompress to more than", tooLarge: true},
		{name: "zip lying about METADATA size", filename: "demo_pkg-1.0-py3-none-any.whl",
			data: zipLyingMetadata(t), want: "cannot read"},
		{name: "not a zip", filename: "demo_pkg-1.0-py3-none-any.whl", data: []byte("hello"), want: "not a valid zip"},
		{name: "bad wheel filename", filename: "demo_pkg-1.0.whl", data: goodWheel(t), want: "not name-version"},
		{name: "unsupported extension", filename: "demo_pkg-1.0.egg", data: goodWheel(t), want: "not a wheel"},
		{name: "path in filename", filename: "../demo_pkg-1.0-py3-none-any.whl", data: goodWheel(t), want: "not allowed"},

		{name: "tar with symlink", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/passwd", mode: os.ModeSymlink, link: "/etc/passwd"}),
			want: `contains a link: "demo-pkg-1.0/passwd" → "/etc/passwd"`},
		{name: "tar with hard link", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/x", link: "/etc/shadow"}), want: "contains a link"},
		{name: "tar with device", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/tty", mode: os.ModeDevice}), want: "not a regular file"},
		{name: "tar with ../", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/../../x", body: "x"}), want: `".."`},
		{name: "tar with absolute path", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "/demo-pkg-1.0/PKG-INFO", body: meta}), want: "absolute path"},
		{name: "sdist name mismatch", filename: "other-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "other-1.0/PKG-INFO", body: meta}), want: "metadata says name 'demo-pkg' but the filename says 'other'"},
		{name: "sdist version mismatch", filename: "demo-pkg-1.1.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.1/PKG-INFO", body: meta}), want: "metadata says version '1.0' but the filename says '1.1'"},
		{name: "sdist top dir mismatch", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "evil-1.0/PKG-INFO", body: meta}), want: `top-level directory "evil-1.0" does not match`},
		{name: "sdist missing PKG-INFO", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/setup.py", body: ""}, entry{name: "demo-pkg-1.0/src/PKG-INFO", body: meta}), want: "no demo-pkg-1.0/PKG-INFO"},
		{name: "sdist two top dirs", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "other/x", body: ""}), want: "single top-level directory"},
		{name: "sdist duplicate file", filename: "demo-pkg-1.0.tar.gz",
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}), want: "twice"},
		{name: "tar gzip bomb", filename: "demo-pkg-1.0.tar.gz", limits: small,
			data: buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/zeros", body: strings.Repeat("\x00", 2<<20)}),
			want: "uncompress to more than", tooLarge: true},
		{name: "tar too many entries", filename: "demo-pkg-1.0.tar.gz", limits: small,
			data: buildTarGz(t, append([]entry{{name: "demo-pkg-1.0/PKG-INFO", body: meta}}, manyEntries(20)...)...), want: "entries", tooLarge: true},
		{name: "not gzip", filename: "demo-pkg-1.0.tar.gz", data: []byte("plain text"), want: "not a gzip-compressed tar"},
		{name: "truncated tar.gz", filename: "demo-pkg-1.0.tar.gz",
			data: truncate(buildTarGz(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/big", body: strings.Repeat("abc", 10000)})), want: "not a valid .tar.gz"},
		{name: "zip sdist name mismatch", filename: "other-1.0.zip",
			data: buildZip(t, entry{name: "other-1.0/PKG-INFO", body: meta}), want: "metadata says name 'demo-pkg'"},
		{name: "zip sdist with ../", filename: "demo-pkg-1.0.zip",
			data: buildZip(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "../x", body: ""}), want: `".."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := inspectBytes(tt.limits, tt.filename, tt.data)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Inspect = %+v, %v; want *InvalidError", d, err)
			}
			if !strings.Contains(inv.Msg, tt.want) {
				t.Errorf("message %q does not contain %q", inv.Msg, tt.want)
			}
			if errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Errorf("errors.Is(ErrTooLarge) = %v, want %v", !tt.tooLarge, tt.tooLarge)
			}
		})
	}
}

// TestInspectAccepts covers hand-built archives that must pass: the
// variations real tools produce.
func TestInspectAccepts(t *testing.T) {
	meta := metadataFile("demo-pkg", "1.0")
	tests := []struct {
		name, filename string
		data           []byte
	}{
		{"wheel", "demo_pkg-1.0-py3-none-any.whl", goodWheel(t)},
		{"wheel with build tag", "demo_pkg-1.0-1-py3-none-any.whl", goodWheel(t)},
		{"wheel with directory entries", "demo_pkg-1.0-py3-none-any.whl", goodWheel(t, entry{name: "demo_pkg/sub/", mode: os.ModeDir | 0o755})},
		{"old-style sdist name with dash", "demo-pkg-1.0.tar.gz", buildTarGz(t, entry{name: "demo-pkg-1.0/", body: ""}, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta})},
		{"PEP 625 sdist name", "demo_pkg-1.0.tar.gz", buildTarGz(t, entry{name: "demo_pkg-1.0/PKG-INFO", body: meta})},
		{"./ prefixed tar entries", "demo_pkg-1.0.tar.gz", buildTarGz(t, entry{name: "./demo_pkg-1.0/PKG-INFO", body: meta})},
		{"zip sdist", "demo-pkg-1.0.zip", buildZip(t, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/setup.py"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := inspectBytes(InspectLimits{}, tt.filename, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "demo-pkg" || d.Version != "1.0" || d.Summary != "test" || d.RequiresPython != ">=3.8" {
				t.Errorf("got %+v", d)
			}
		})
	}
}

func manyEntries(n int) []entry {
	var es []entry
	for i := range n {
		es = append(es, entry{name: "demo-pkg-1.0/f" + string(rune('a'+i%26)) + strings.Repeat("x", i)})
	}
	return es
}

// zipWithDeclaredSize writes a wheel with an entry claiming size bytes
// uncompressed, the shape of a zip bomb.
func zipWithDeclaredSize(t testing.TB, size uint64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range []entry{{name: "demo_pkg-1.0.dist-info/METADATA", body: metadataFile("demo-pkg", "1.0")}, {name: "demo_pkg-1.0.dist-info/WHEEL", body: "x"}} {
		w, _ := zw.Create(e.name)
		w.Write([]byte(e.body))
	}
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "demo_pkg/bomb", Method: zip.Store, CompressedSize64: 4, UncompressedSize64: size})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("boom"))
	zw.Close()
	return buf.Bytes()
}

// zipLyingMetadata declares METADATA as 10 bytes but stores more; reading
// must stop at the declared size rather than trust the stream.
func zipLyingMetadata(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	body := []byte(metadataFile("demo-pkg", "1.0"))
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "demo_pkg-1.0.dist-info/METADATA", Method: zip.Store,
		CompressedSize64: uint64(len(body)), UncompressedSize64: 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	w, _ = zw.Create("demo_pkg-1.0.dist-info/WHEEL")
	w.Write([]byte("x"))
	zw.Close()
	return buf.Bytes()
}

func truncate(b []byte) []byte { return b[:len(b)*2/3] }

// FuzzInspectZip feeds arbitrary bytes as a wheel and as a zip sdist: no
// panic, no error other than *InvalidError, and never more read than the
// limits allow.
func FuzzInspectZip(f *testing.F) {
	f.Add(goodWheel(f))
	f.Add(goodWheel(f, entry{name: "../x", body: "y"}))
	f.Add(zipWithDeclaredSize(f, 1<<40))
	f.Add(buildZip(f, entry{name: "demo-pkg-1.0/PKG-INFO", body: metadataFile("demo-pkg", "1.0")}))
	limits := InspectLimits{MaxTotalSize: 1 << 20, MaxEntries: 100, MaxMetadataSize: 64 << 10}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range []string{"demo_pkg-1.0-py3-none-any.whl", "demo-pkg-1.0.zip"} {
			r := &countingReaderAt{r: bytes.NewReader(b)}
			d, err := limits.Inspect(name, r, int64(len(b)))
			if err != nil {
				var inv *InvalidError
				if !errors.As(err, &inv) {
					t.Fatalf("%s: error is not *InvalidError: %v", name, err)
				}
				continue
			}
			if d.Name == "" || d.Version == "" || int64(len(d.Metadata)) > limits.MaxMetadataSize {
				t.Fatalf("accepted %+v", d)
			}
		}
	})
}

// FuzzInspectTar is FuzzInspectZip for .tar.gz sdists; the seeds are
// gzip-compressed so mutations reach the tar layer too.
func FuzzInspectTar(f *testing.F) {
	meta := metadataFile("demo-pkg", "1.0")
	f.Add(buildTarGz(f, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}))
	f.Add(buildTarGz(f, entry{name: "demo-pkg-1.0/PKG-INFO", body: meta}, entry{name: "demo-pkg-1.0/l", mode: os.ModeSymlink, link: "/etc/passwd"}))
	limits := InspectLimits{MaxTotalSize: 1 << 20, MaxEntries: 100, MaxMetadataSize: 64 << 10}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := limits.Inspect("demo-pkg-1.0.tar.gz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		if d.Name == "" || int64(len(d.Metadata)) > limits.MaxMetadataSize {
			t.Fatalf("accepted %+v", d)
		}
		// Whatever is accepted really decompresses within the limit.
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, io.LimitReader(zr, limits.MaxTotalSize+1)); n > limits.MaxTotalSize {
			t.Fatalf("accepted an archive decompressing to more than %d bytes", limits.MaxTotalSize)
		}
	})
}

// countingReaderAt checks Inspect never reads outside the file.
type countingReaderAt struct {
	r *bytes.Reader
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > c.r.Size() {
		panic("read outside the file")
	}
	return c.r.ReadAt(p, off)
}
