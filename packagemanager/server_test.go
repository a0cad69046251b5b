package packagemanager_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/packagemanager"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/platform"
)

// wheel builds a minimal valid wheel in memory.
func wheel(t *testing.T, name, version string) []byte {
	t.Helper()
	dist := strings.ReplaceAll(name, "-", "_") + "-" + version + ".dist-info/"
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := map[string]string{
		strings.ReplaceAll(name, "-", "_") + "/__init__.py": "",
		dist + "METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nRequires-Python: >=3.8\n",
		dist + "WHEEL":    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		dist + "RECORD":   "",
	}
	for n, c := range files {
		w, _ := zw.Create(n)
		w.Write([]byte(c))
	}
	zw.Close()
	return buf.Bytes()
}

// rpkg builds a minimal R source package tarball in memory.
func rpkg(t *testing.T, name, version string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	desc := "Package: " + name + "\nVersion: " + version + "\nTitle: Test\nDescription: Test.\nLicense: MIT\nImports: utils\nNeedsCompilation: no\n"
	tw.WriteHeader(&tar.Header{Name: name + "/DESCRIPTION", Mode: 0o644, Size: int64(len(desc)), Typeflag: tar.TypeReg})
	tw.Write([]byte(desc))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// start runs Package Manager in-process on a free port, seeded from a
// directory, with an upstream that cannot be reached.
func start(t *testing.T) string {
	t.Helper()
	_, base := startServer(t)
	return base
}

func startServer(t *testing.T) (*packagemanager.Server, string) {
	t.Helper()
	seed := t.TempDir()
	os.WriteFile(filepath.Join(seed, "seed_pkg-1.0-py3-none-any.whl"), wheel(t, "seed-pkg", "1.0"), 0o644)
	os.WriteFile(filepath.Join(seed, "seedr_0.1.0.tar.gz"), rpkg(t, "seedr", "0.1.0"), 0o644)
	os.WriteFile(filepath.Join(seed, "seedr_0.2.0.tar.gz"), rpkg(t, "seedr", "0.2.0"), 0o644)
	os.WriteFile(filepath.Join(seed, "README"), []byte("not a package"), 0o644)
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.PackageManager.Listen = "127.0.0.1:0"
	cfg.PackageManager.PyPIUpstream = "http://127.0.0.1:1/simple/"
	cfg.PackageManager.SeedDir = seed
	ctx, cancel := context.WithCancel(context.Background())
	s, err := packagemanager.New(ctx, cfg, platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, "http://" + s.HTTP.Addr().String()
}

func get(t *testing.T, u, accept string) (*http.Response, string) {
	t.Helper()
	h := http.Header{}
	if accept != "" {
		h.Set("Accept", accept)
	}
	return request(t, "GET", u, h)
}

// request sends one request with header h, redirects not followed, and
// returns the response with its body read.
func request(t *testing.T, method, u string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	req.Header = h
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const jsonAccept = "application/vnd.pypi.simple.v1+json"

func TestHandlers(t *testing.T) {
	base := start(t)
	cases := []struct {
		name, path, accept string
		status             int
		contains           string
	}{
		{"unknown repository", "/nope/latest/simple/", "", 404, "repository nope"},
		{"unknown snapshot", "/pypi/yesterday/simple/", "", 404, "not latest, a date"},
		{"future snapshot", "/pypi/999999/simple/", "", 404, "no such transaction"},
		{"date before anything", "/pypi/2000-01-01/simple/", "", 404, "nothing existed yet"},
		{"unknown project, upstream down", "/pypi/latest/simple/nothing-here/", jsonAccept, 404, "nothing-here"},
		{"no acceptable format", "/pypi/latest/simple/", "application/xml", 406, "application/vnd.pypi.simple.v1+json"},
		{"index lists the seed", "/pypi/latest/simple/", "text/html", 200, `href="seed-pkg/"`},
		{"project page", "/pypi/latest/simple/seed-pkg/", jsonAccept, 200, `"requires-python":">=3.8"`},
		{"simple on an R repository", "/cran/latest/simple/", "", 404, "r repository cran"},
		{"PACKAGES", "/cran/latest/src/contrib/PACKAGES", "", 200, "Package: seedr\nVersion: 0.2.0"},
		{"archived version", "/cran/latest/src/contrib/Archive/seedr/seedr_0.1.0.tar.gz", "", 200, ""},
		{"current version is not archived", "/cran/latest/src/contrib/Archive/seedr/seedr_0.2.0.tar.gz", "", 404, "not archived"},
		{"unknown tarball", "/cran/latest/src/contrib/nope_1.0.tar.gz", "", 404, "nope_1.0.tar.gz"},
		{"repository page", "/pypi/", "text/html", 200, "seed-pkg"},
		{"repository list", "/__api__/repos", "", 200, `"name":"cran"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, tc.accept)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.contains) {
				t.Errorf("GET %s: %d, want %d containing %q\n%s", tc.path, resp.StatusCode, tc.status, tc.contains, body)
			}
		})
	}

	resp, _ := get(t, base+"/pypi/latest/simple/Seed_Pkg/", "text/html")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/pypi/latest/simple/seed-pkg/" {
		t.Errorf("non-normalized name: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, base+"/pypi/latest/simple/seed-pkg", "text/html"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("no trailing slash: %d", resp.StatusCode)
	}

	// The advertised metadata hash is the .metadata file's own.
	_, body := get(t, base+"/pypi/latest/simple/seed-pkg/", jsonAccept)
	var page struct {
		Files []struct {
			URL          string            `json:"url"`
			CoreMetadata map[string]string `json:"core-metadata"`
			Hashes       map[string]string `json:"hashes"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Files) != 1 {
		t.Fatalf("project page: %v\n%s", err, body)
	}
	f := page.Files[0]
	_, whl := get(t, base+f.URL, "")
	_, meta := get(t, base+f.URL+".metadata", "")
	if sum(whl) != f.Hashes["sha256"] || sum(meta) != f.CoreMetadata["sha256"] || sum(meta) == sum(whl) {
		t.Errorf("hashes: wheel %s (listed %s), metadata %s (listed %s)", sum(whl), f.Hashes["sha256"], sum(meta), f.CoreMetadata["sha256"])
	}

	// Uploads need a token or a publisher.
	req, _ := http.NewRequest("POST", base+"/upload/pypi-local/", strings.NewReader(""))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous upload: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("POST", base+"/upload/pypi-local/", strings.NewReader(""))
	req.SetBasicAuth("__token__", "atrpm_forged")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged token: %v %v", resp.StatusCode, err)
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSimpleFastPath: the Simple API pages the fast path serves are the
// ones the routes serve. A request with a non-matching If-None-Match is
// left to the routes (http.ServeContent), so each page is fetched both
// ways and compared; a matching one still gets its 304; HEAD has the
// length and no body.
func TestSimpleFastPath(t *testing.T) {
	srv, base := startServer(t)
	fetch := func(method, path, accept, inm string) (*http.Response, string) {
		t.Helper()
		h := http.Header{"Accept": {accept}}
		if inm != "" {
			h.Set("If-None-Match", inm)
		}
		return request(t, method, base+path, h)
	}
	for _, tc := range []struct{ path, accept string }{
		{"/pypi/latest/simple/", "text/html"},
		{"/pypi/latest/simple/", jsonAccept},
		{"/pypi/latest/simple/seed-pkg/", "text/html"},
		{"/pypi/latest/simple/seed-pkg/", jsonAccept},
		{"/pypi/latest/simple/seed-pkg/", ""},
	} {
		// The handler itself takes the request (it is not left to the
		// routes, which would make the comparison below vacuous).
		raw := "GET " + tc.path + " HTTP/1.1\r\nHost: x\r\nAccept: " + tc.accept + "\r\n\r\n"
		r, ok := h1.Parse([]byte(raw))
		if !ok {
			t.Fatalf("h1 refuses %q", raw)
		}
		r.Ctx = t.Context()
		rec := httptest.NewRecorder()
		if !srv.SimpleFast(rec, r) {
			t.Errorf("%s (%s): the fast handler declined", tc.path, tc.accept)
		}
		fast, fastBody := fetch("GET", tc.path, tc.accept, "")
		if rec.Body.String() != fastBody {
			t.Errorf("%s (%s): the handler's body differs from the server's", tc.path, tc.accept)
		}
		slow, slowBody := fetch("GET", tc.path, tc.accept, `"not-this-one"`)
		if fast.StatusCode != 200 || slow.StatusCode != 200 || fastBody != slowBody {
			t.Errorf("%s (%s): fast %d, routes %d, bodies equal %v", tc.path, tc.accept, fast.StatusCode, slow.StatusCode, fastBody == slowBody)
			continue
		}
		for _, h := range []string{"Content-Type", "Etag", "Cache-Control", "Vary", "Content-Length", "Accept-Ranges"} {
			if fast.Header.Get(h) != slow.Header.Get(h) {
				t.Errorf("%s (%s): %s fast %q, routes %q", tc.path, tc.accept, h, fast.Header.Get(h), slow.Header.Get(h))
			}
		}
		if resp, _ := fetch("GET", tc.path, tc.accept, fast.Header.Get("Etag")); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: matching If-None-Match: %d, want 304", tc.path, resp.StatusCode)
		}
		head, body := fetch("HEAD", tc.path, tc.accept, "")
		if head.StatusCode != 200 || body != "" || head.ContentLength != int64(len(fastBody)) {
			t.Errorf("%s: HEAD %d, length %d, body %q", tc.path, head.StatusCode, head.ContentLength, body)
		}
	}
	// A snapshot's page is cached for a day, latest for a minute.
	if resp, _ := fetch("GET", "/pypi/1/simple/", "text/html", ""); resp.Header.Get("Cache-Control") != "public, max-age=86400" {
		t.Errorf("snapshot page Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}
