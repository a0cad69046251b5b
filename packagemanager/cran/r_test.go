package cran

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// These tests check the index against R itself, the only real judge of
// what R accepts. They need R (scripts/r.sh install); without it they skip
// on a developer's machine and fail in CI, so a CI image without R cannot
// pass silently.

func requireR(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"R", "Rscript"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found; CI must run scripts/r.sh install first", tool)
			}
			t.Skipf("%s not found; run scripts/r.sh install to run the tests against R", tool)
		}
	}
}

// runR runs an R script with --vanilla so that no site or user profile
// changes the result, and returns its combined output.
func runR(t *testing.T, script string, args ...string) string {
	t.Helper()
	// A file, not -e: Rscript mangles newlines in -e expressions.
	file := filepath.Join(t.TempDir(), "script.R")
	if err := os.WriteFile(file, []byte(script+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "Rscript", append([]string{"--vanilla", file}, args...)...)
	cmd.Env = append(os.Environ(), "R_LIBS_USER="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Rscript failed: %v\nscript:\n%s\noutput:\n%s", err, script, out)
	}
	return string(out)
}

// buildWithR runs R CMD build on testdata/src/{dir} and returns the path of
// the tarball it made.
func buildWithR(t *testing.T, outDir, dir string) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("testdata", "src", dir))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(outDir, "*.tar.gz"))
	cmd := exec.CommandContext(t.Context(), "R", "CMD", "build", "--no-build-vignettes", "--no-manual", src)
	cmd.Dir = outDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("R CMD build %s: %v\n%s", dir, err, out)
	}
	after, _ := filepath.Glob(filepath.Join(outDir, "*.tar.gz"))
	for _, f := range after {
		if !slices.Contains(before, f) {
			return f
		}
	}
	t.Fatalf("R CMD build %s made no tarball", dir)
	return ""
}

func inspectFile(t *testing.T, path string) Package {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := InspectSourcePackage(filepath.Base(path), f, Limits{})
	if err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	return p
}

func writeIndexFile(t *testing.T, path string, write func(w *bytes.Buffer) error) {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// repoServer serves a directory and records the paths asked for.
type repoServer struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func serveRepo(t *testing.T, dir string) *repoServer {
	rs := &repoServer{}
	fs := http.FileServer(http.Dir(dir))
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.paths = append(rs.paths, r.URL.Path)
		rs.mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *repoServer) requested(path string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Contains(rs.paths, path)
}

func TestWithR(t *testing.T) {
	requireR(t)
	build := t.TempDir()
	var pkgs []Package
	for _, dir := range []string{"hello1", "hello2", "greeter"} {
		pkgs = append(pkgs, inspectFile(t, buildWithR(t, build, dir)))
	}
	var entries []Entry
	for _, p := range pkgs {
		entries = append(entries, p.Entry())
	}
	latest := Latest(entries)
	if len(latest) != 2 || latest[1].Version != "1.1.0" {
		t.Fatalf("Latest = %+v", latest)
	}

	// A CRAN-like repository: the latest versions in src/contrib, the
	// older one in Archive/. Two copies: one without PACKAGES.rds, to
	// check that R falls back to PACKAGES.gz.
	repo, repoNoRDS := t.TempDir(), t.TempDir()
	for _, root := range []string{repo, repoNoRDS} {
		contrib := filepath.Join(root, "src", "contrib")
		archive := filepath.Join(contrib, "Archive", "atriumhello")
		if err := os.MkdirAll(archive, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range pkgs {
			dst := filepath.Join(contrib, p.Filename)
			if p.Description.Version == "1.0.0" {
				dst = filepath.Join(archive, p.Filename)
			}
			copyFile(t, filepath.Join(build, p.Filename), dst)
		}
		writeIndexFile(t, filepath.Join(contrib, "PACKAGES"), func(w *bytes.Buffer) error { return WritePACKAGES(w, latest) })
		writeIndexFile(t, filepath.Join(contrib, "PACKAGES.gz"), func(w *bytes.Buffer) error { return WritePACKAGESGz(w, latest) })
		if root == repo {
			writeIndexFile(t, filepath.Join(contrib, "PACKAGES.rds"), func(w *bytes.Buffer) error { return WritePACKAGESRDS(w, latest) })
		}
	}
	contrib := filepath.Join(repo, "src", "contrib")

	t.Run("same index as tools::write_PACKAGES", func(t *testing.T) {
		rdir := t.TempDir()
		for _, e := range latest {
			name := e.Package + "_" + e.Version + ".tar.gz"
			copyFile(t, filepath.Join(build, name), filepath.Join(rdir, name))
		}
		runR(t, `tools::write_PACKAGES(commandArgs(TRUE)[1], type = "source")`, rdir)
		f, err := os.Open(filepath.Join(rdir, "PACKAGES"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		theirs, err := ReadPACKAGES(f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(theirs, latest) {
			t.Errorf("write_PACKAGES wrote\n%+v\nwe write\n%+v", theirs, latest)
		}
		// Our PACKAGES.rds must hold what R's does, in the columns we use
		// (R's has a column for every field, NA where unused).
		out := runR(t, `a <- commandArgs(TRUE)
			ours <- readRDS(file.path(a[1], "PACKAGES.rds")); theirs <- readRDS(file.path(a[2], "PACKAGES.rds"))
			dcf <- read.dcf(file.path(a[1], "PACKAGES"))
			rest <- theirs[, setdiff(colnames(theirs), colnames(ours)), drop = FALSE]
			cat("rds-vs-R:", identical(ours, theirs[, colnames(ours)]), all(is.na(rest)), "\n")
			rowless <- ours; rownames(rowless) <- NULL
			cat("rds-vs-dcf:", identical(rowless[, colnames(dcf)], dcf), setequal(colnames(ours), colnames(dcf)), "\n")`,
			contrib, rdir)
		for _, want := range []string{"rds-vs-R: TRUE TRUE", "rds-vs-dcf: TRUE TRUE"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in\n%s", want, out)
			}
		}
	})

	fields := []string{"Package", "Version", "Depends", "Imports", "License", "MD5sum", "NeedsCompilation"}
	for _, tc := range []struct {
		name    string
		root    string
		wantRDS bool
	}{
		{"available.packages reads PACKAGES.rds", repo, true},
		{"available.packages falls back to PACKAGES.gz", repoNoRDS, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveRepo(t, tc.root)
			out := filepath.Join(t.TempDir(), "ap.dcf")
			runR(t, fmt.Sprintf(`options(repos = c(atrium = %q))
				ap <- available.packages()
				write.dcf(ap[, c(%s), drop = FALSE], file = %q)`,
				srv.URL, `"`+strings.Join(fields, `", "`)+`"`, out), srv.URL)
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ReadPACKAGES(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []Entry
			for _, e := range latest {
				want = append(want, Entry{Package: e.Package, Version: e.Version, Depends: e.Depends, Imports: e.Imports, License: e.License, MD5sum: e.MD5sum, NeedsCompilation: e.NeedsCompilation})
			}
			if !slices.Equal(got, want) {
				t.Errorf("available.packages() gave\n%+v\nwant\n%+v", got, want)
			}
			if got[0].Imports != "atriumhello (>= 1.1.0), utils" || got[0].Depends != "R (>= 3.5.0)" || got[1].NeedsCompilation != "no" || got[1].MD5sum != pkgs[1].MD5 {
				t.Errorf("unexpected fields %+v", got)
			}
			gzAsked := srv.requested("/src/contrib/PACKAGES.gz")
			if !srv.requested("/src/contrib/PACKAGES.rds") || gzAsked == tc.wantRDS {
				t.Errorf("requests %v: want PACKAGES.rds first and PACKAGES.gz only if it fails", srv.paths)
			}
		})
	}

	t.Run("install.packages", func(t *testing.T) {
		srv := serveRepo(t, repo)
		lib := t.TempDir()
		out := runR(t, fmt.Sprintf(`options(repos = c(atrium = %q), warn = 2)
			lib <- %q
			.libPaths(c(lib, .libPaths()))
			install.packages("atriumhello", lib = lib)
			library(atriumhello, lib.loc = lib)
			cat("version:", format(packageVersion("atriumhello", lib.loc = lib)), "\n")
			cat("says:", hello(), "\n")
			install.packages("atriumgreeter", lib = lib)
			library(atriumgreeter, lib.loc = lib)
			cat("greeter:", greet(), "\n")`, srv.URL, lib))
		for _, want := range []string{"version: 1.1.0", "says: hello, world from 1.1.0", "greeter: HELLO, GREETER FROM 1.1.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in R output:\n%s", want, out)
			}
		}
		if !srv.requested("/src/contrib/atriumhello_1.1.0.tar.gz") {
			t.Errorf("tarball not fetched; requests %v", srv.paths)
		}
	})

	t.Run("install archived version", func(t *testing.T) {
		srv := serveRepo(t, repo)
		lib := t.TempDir()
		out := runR(t, fmt.Sprintf(`options(warn = 2)
			lib <- %q
			install.packages(%q, repos = NULL, type = "source", lib = lib)
			cat("version:", format(packageVersion("atriumhello", lib.loc = lib)), "\n")
			library(atriumhello, lib.loc = lib)
			cat("says:", hello(), "\n")`, lib, srv.URL+"/src/contrib/Archive/atriumhello/atriumhello_1.0.0.tar.gz"))
		for _, want := range []string{"version: 1.0.0", "says: hello, world from 1.0.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in R output:\n%s", want, out)
			}
		}
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
