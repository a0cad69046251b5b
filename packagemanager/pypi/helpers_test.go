package pypi

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireTool skips when an outside tool is missing on a developer machine
// and fails under CI, where scripts/deps.sh must have installed it.
func requireTool(t *testing.T, what string, check ...string) {
	t.Helper()
	if err := exec.Command(check[0], check[1:]...).Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI: %v", what, err)
		}
		t.Skipf("%s not available (%v); pip install build twine setuptools wheel", what, err)
	}
}

var (
	builtOnce sync.Once
	builtDir  string
	builtErr  error
)

// realDists builds the projects under testdata/src with the real Python
// tooling (once per test binary) and returns the directory holding the
// wheels and sdists.
func realDists(t *testing.T) string {
	t.Helper()
	requireTool(t, "python3 with setuptools, wheel and build", "python3", "-c", "import setuptools, wheel, build")
	builtOnce.Do(func() {
		builtDir, builtErr = os.MkdirTemp("", "pypi-dists-")
		if builtErr != nil {
			return
		}
		out := filepath.Join(builtDir, "dist")
		for _, p := range []string{"demo-pkg", "zope.thing"} {
			// Build from a copy: setuptools writes build/ and egg-info
			// into the source tree.
			src := filepath.Join(builtDir, "src", p)
			if builtErr = os.CopyFS(src, os.DirFS(filepath.Join("testdata", "src", p))); builtErr != nil {
				return
			}
			for _, args := range [][]string{
				{"-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, "."},
				{"-m", "build", "-q", "--sdist", "--no-isolation", "-o", out, "."},
			} {
				cmd := exec.Command("python3", args...)
				cmd.Dir = src
				if b, err := cmd.CombinedOutput(); err != nil {
					builtErr = errors.New(string(b))
					return
				}
			}
		}
		builtDir = out
	})
	if builtErr != nil {
		t.Fatalf("build test distributions: %v", builtErr)
	}
	return builtDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(filepath.Dir(builtDir))
	}
	os.Exit(code)
}

// entry is one member of a hand-built archive.
type entry struct {
	name string
	body string
	mode os.FileMode // 0: regular file 0644
	link string      // tar link target
}

func buildZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func buildTarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Linkname: e.link}
		switch {
		case e.mode&os.ModeSymlink != 0:
			h.Typeflag, h.Size = tar.TypeSymlink, 0
		case e.mode&os.ModeDevice != 0:
			h.Typeflag, h.Size = tar.TypeChar, 0
		case e.link != "":
			h.Typeflag, h.Size = tar.TypeLink, 0
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

func metadataFile(name, version string) string {
	return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nSummary: test\nRequires-Python: >=3.8\n\nlong description\n"
}

// goodWheel is a minimal valid wheel for demo_pkg 1.0 plus extra entries.
func goodWheel(t testing.TB, extra ...entry) []byte {
	return buildZip(t, append([]entry{
		{name: "demo_pkg/__init__.py", body: ""},
		{name: "demo_pkg-1.0.dist-info/METADATA", body: metadataFile("demo-pkg", "1.0")},
		{name: "demo_pkg-1.0.dist-info/WHEEL", body: "Wheel-Version: 1.0\n"},
	}, extra...)...)
}
