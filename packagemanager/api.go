package packagemanager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/packagemanager/mirror"
	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/pyname"
)

func currentUsername(c *gin.Context) (string, bool) {
	u, ok := auth.CurrentUser(c)
	return u.Username, ok
}

// apiRepos lists the repositories as JSON.
func (s *Server) apiRepos(c *gin.Context) {
	repos, err := s.svc.Store.ListRepos(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, ReposJSON(repos))
}

// RepoJSON is a repository as the API and `atrium pm list -o json` show it.
type RepoJSON struct {
	Name    string       `json:"name"`
	Type    string       `json:"type"`
	Sources []SourceJSON `json:"sources"`
}

// SourceJSON is a source as the API shows it.
type SourceJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Upstream string `json:"upstream,omitempty"`
}

// ReposJSON converts repositories for JSON output.
func ReposJSON(repos []store.Repo) []RepoJSON {
	out := make([]RepoJSON, 0, len(repos))
	for _, r := range repos {
		rj := RepoJSON{Name: r.Name, Type: r.Type, Sources: []SourceJSON{}}
		for _, src := range r.Sources {
			rj.Sources = append(rj.Sources, SourceJSON{src.Name, src.Type, src.UpstreamURL})
		}
		out = append(out, rj)
	}
	return out
}

// Default repository and source names a fresh suite has.
const (
	DefaultPyPIRepo     = "pypi"
	DefaultCRANRepo     = "cran"
	DefaultPyPILocal    = "pypi-local"
	DefaultPyPIUpstream = "pypi-upstream"
	DefaultRLocal       = "cran-local"
)

// EnsureDefaults creates, on first start (no repository yet), a "pypi"
// repository (local uploads first, then the upstream mirror) and a "cran"
// repository (local R packages), and imports the seed directory if one is
// configured. Later starts change nothing, whatever an admin did since.
func (s *Service) EnsureDefaults(ctx context.Context) error {
	repos, err := s.Store.ListRepos(ctx)
	if err != nil || len(repos) > 0 {
		return err
	}
	upstream := s.cfg.PackageManager.PyPIUpstream
	if upstream == "" {
		if upstream, err = mirror.DefaultIndexURL(ctx); err != nil {
			s.log.Warn("no upstream index for the pypi repository; it serves local uploads only", "err", err)
		}
	}
	steps := []func() error{
		func() error { _, err := s.Store.CreateSource(ctx, DefaultPyPILocal, store.LocalPython, ""); return err },
		func() error {
			_, err := s.Store.CreateRepo(ctx, DefaultPyPIRepo, store.Python, "Python packages")
			return err
		},
		func() error { return s.Store.Subscribe(ctx, DefaultPyPIRepo, DefaultPyPILocal) },
		func() error { _, err := s.Store.CreateSource(ctx, DefaultRLocal, store.LocalR, ""); return err },
		func() error { _, err := s.Store.CreateRepo(ctx, DefaultCRANRepo, store.R, "R packages"); return err },
		func() error { return s.Store.Subscribe(ctx, DefaultCRANRepo, DefaultRLocal) },
	}
	if upstream != "" {
		steps = append(steps,
			func() error {
				_, err := s.Store.CreateSource(ctx, DefaultPyPIUpstream, store.PyPIMirror, upstream)
				return err
			},
			func() error { return s.Store.Subscribe(ctx, DefaultPyPIRepo, DefaultPyPIUpstream) })
	}
	for _, step := range steps {
		if err := step(); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	s.log.Info("created the default repositories", "pypi_upstream", upstream)
	if dir := s.cfg.PackageManager.SeedDir; dir != "" {
		return s.ImportSeed(ctx, dir)
	}
	return nil
}

// ImportSeed adds every package file in dir to the default local sources:
// wheels and sdists to pypi-local, R source packages to cran-local. A
// Python sdist and an R package are both .tar.gz: R packages are named
// {pkg}_{version}.tar.gz, which no Python sdist is.
func (s *Service) ImportSeed(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("seed dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(name, ".tar.gz") && strings.Contains(name, "_"):
			_, _, err = s.AddRPackage(ctx, DefaultRLocal, name, f, "seed")
		case strings.HasSuffix(name, ".whl") || strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".zip"):
			_, _, err = s.AddPythonFile(ctx, DefaultPyPILocal, name, f, Want{}, "seed")
		default:
			f.Close()
			continue
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	s.log.Info("imported the seed directory", "dir", dir, "files", len(names))
	return nil
}

// packageRows lists a repository's packages and versions for its page,
// filtered by a name substring.
func (s *Service) packageRows(ctx context.Context, repo store.Repo, txn int64, q string) ([]pkgRow, error) {
	versions := map[string][]string{}
	if repo.Type == store.R {
		pkgs, err := s.Store.RPackages(ctx, repo, txn)
		if err != nil {
			return nil, err
		}
		for _, p := range pkgs {
			versions[p.Package] = append(versions[p.Package], p.Version)
		}
	} else {
		names, err := s.Store.PythonProjects(ctx, repo, txn)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if q != "" && !strings.Contains(strings.ToLower(n), q) {
				continue
			}
			_, files, err := s.Store.PythonProject(ctx, repo, txn, pyname.Normalize(n))
			if err != nil {
				return nil, err
			}
			seen := map[string]bool{}
			for _, f := range files {
				if !seen[f.Version] {
					seen[f.Version] = true
					versions[n] = append(versions[n], f.Version)
				}
			}
		}
	}
	var rows []pkgRow
	for _, name := range sortedKeys(versions) {
		if q != "" && !strings.Contains(strings.ToLower(name), q) {
			continue
		}
		vs := versions[name]
		sortVersions(repo.Type, vs)
		rows = append(rows, pkgRow{Name: name, Versions: strings.Join(vs, ", ")})
	}
	return rows, nil
}
