package pypi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/atrium-suite/atrium/shared/pyname"
)

// TestPipDownload serves the built distributions through WriteIndex and
// WriteProject and has the real pip resolve and download from them, once
// with its JSON Accept header and once forced to HTML (a plain text/html
// answer). The server counts .metadata requests to prove pip took the PEP
// 658 path and never fetched a yanked file.
func TestPipDownload(t *testing.T) {
	dir := realDists(t)
	type stored struct {
		dist Dist
		data []byte
	}
	files := map[string]stored{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Inspect(e.Name(), strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = stored{d, b}
	}
	hexsum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for _, forceHTML := range []bool{false, true} {
		name := "json"
		if forceHTML {
			name = "html"
		}
		t.Run(name, func(t *testing.T) {
			var metadataHits, jsonPages atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				format, ct, ok := Negotiate(r.Header.Get("Accept"))
				if !ok {
					http.Error(w, "not acceptable", http.StatusNotAcceptable)
					return
				}
				if forceHTML {
					format, ct = FormatHTML, ContentTypeTextHTML
				}
				w.Header().Set("Vary", "Accept")
				switch p := r.URL.Path; {
				case p == "/simple/":
					w.Header().Set("Content-Type", ct)
					WriteIndex(w, format, []string{"demo-pkg", "Zope.Thing"})
				case strings.HasPrefix(p, "/simple/"):
					project := strings.TrimSuffix(strings.TrimPrefix(p, "/simple/"), "/")
					var proj Project
					for fn, s := range files {
						if pyname.Normalize(s.dist.Name) != project {
							continue
						}
						proj.Name = s.dist.Name
						f := File{Filename: fn, URL: "../../files/" + fn, SHA256: hexsum(s.data), RequiresPython: s.dist.RequiresPython, Size: int64(len(s.data))}
						if s.dist.HasCoreMetadataFile() {
							f.CoreMetadataSHA256 = hexsum(s.dist.Metadata)
						}
						proj.Files = append(proj.Files, f)
						proj.Versions = append(proj.Versions, s.dist.Version)
					}
					// A yanked newer version pip must skip.
					proj.Files = append(proj.Files, File{Filename: "demo_pkg-9.0-py3-none-any.whl", URL: "../../files/missing.whl", SHA256: strings.Repeat("0", 64), Yanked: true, YankedReason: "bad"})
					proj.Versions = append(proj.Versions, "9.0")
					if proj.Name == "" {
						http.NotFound(w, r)
						return
					}
					if format == FormatJSON {
						jsonPages.Add(1)
					}
					w.Header().Set("Content-Type", ct)
					WriteProject(w, format, proj)
				case strings.HasPrefix(p, "/files/"):
					fn := strings.TrimPrefix(p, "/files/")
					if meta, ok := strings.CutSuffix(fn, ".metadata"); ok {
						s, ok := files[meta]
						if !ok || !s.dist.HasCoreMetadataFile() {
							http.NotFound(w, r)
							return
						}
						metadataHits.Add(1)
						w.Write(s.dist.Metadata)
						return
					}
					s, ok := files[fn]
					if !ok {
						t.Errorf("pip fetched %s", fn)
						http.NotFound(w, r)
						return
					}
					w.Write(s.data)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			out := t.TempDir()
			cmd := exec.Command("python3", "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
				"--index-url", srv.URL+"/simple/", "-d", out, "demo-pkg", "zope-thing==2.0rc1")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pip download: %v\n%s", err, b)
			}
			got, _ := os.ReadDir(out)
			var names []string
			for _, e := range got {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != "Zope.Thing-2.0rc1-py3-none-any.whl demo_pkg-1.0.0-py3-none-any.whl" {
				t.Errorf("downloaded %q", names)
			}
			if metadataHits.Load() == 0 {
				t.Error("pip did not fetch any PEP 658 .metadata file")
			}
			if !forceHTML && jsonPages.Load() == 0 {
				t.Error("pip was not served JSON")
			}
		})
	}
}
