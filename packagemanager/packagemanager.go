// Package packagemanager is Atrium Package Manager: PyPI- and CRAN-style
// repositories that pip, uv, twine and R use unmodified, with local
// uploads, upstream mirroring and dated snapshots.
//
// This package owns Package Manager's tables (its migrations) and files
// (its subdirectory of the data dir); it reaches other products only over
// HTTP. The protocol code lives in pypi and cran, upstream fetching in
// mirror, and the metadata in store; this package ties them to HTTP.
package packagemanager

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/inputerr"
	"github.com/atrium-suite/atrium/shared/platform"
)

//go:embed migrations
var migrations embed.FS

func migrationsFS() (fs.FS, error) { return fs.Sub(migrations, "migrations") }

// Server is a running Package Manager.
type Server struct {
	*platform.Base
	svc   *Service
	pages *pageCache
}

// New opens Package Manager's database and files, creates the default
// repositories on first start, and builds its HTTP server.
func New(ctx context.Context, cfg config.Config, opts platform.Options) (*Server, error) {
	s := &Server{pages: newPageCache(64 << 20)}
	base, err := platform.Open(ctx, cfg, platform.Product{
		Name:     config.PackageManager,
		Embedded: migrations,
		Landing: platform.Landing{
			Lead:  "PyPI and CRAN repositories for pip, uv, twine and R, with snapshots and upstream mirrors.",
			Extra: func(c *gin.Context) (template.HTML, error) { return s.repoList(c) },
		},
	}, opts)
	if err != nil {
		return nil, err
	}
	s.Base = base
	s.svc = newService(cfg, base.DB, base.Files, base.Log)
	if err := s.svc.EnsureDefaults(ctx); err != nil {
		base.Close()
		return nil, fmt.Errorf("default repositories: %w", err)
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	e := s.HTTP.Engine()
	e.POST("/upload/:source", s.requireUpload, s.uploadPython)
	e.POST("/upload/:source/", s.requireUpload, s.uploadPython)
	e.GET("/__api__/repos", s.apiRepos)
	e.POST("/__api__/sources/:source/packages", s.requireUpload, s.apiUpload)
	e.GET("/:repo/", s.repoPage)
	e.GET("/:repo/:snap/*rest", s.dispatch)
	e.HEAD("/:repo/:snap/*rest", s.dispatch)
	// The Simple API's pages, which every resolution asks for, also on
	// the server's fast path; everything else is dispatch's.
	s.HTTP.HandleFast("/", "/:repo/:snap/*rest", s.simpleFast)
}

// requireUpload lets a request upload to the source in its path when it
// carries a Package Manager token scoped to that source (basic auth
// __token__, as twine sends it), or else when its user is a publisher
// (session or suite API key).
func (s *Server) requireUpload(c *gin.Context) {
	if user, secret, ok := c.Request.BasicAuth(); ok && user == "__token__" && strings.HasPrefix(secret, store.TokenPrefix) {
		err := s.svc.Store.AuthorizeToken(c.Request.Context(), secret, store.ScopeSourcesWrite, c.Param("source"))
		switch {
		case err == nil:
			c.Next()
		case errors.Is(err, store.ErrTokenDenied):
			c.Error(httpx.Errorf(http.StatusForbidden, "this token may not upload to %s (%v)", c.Param("source"), err))
			c.Abort()
		default:
			c.Error(err)
			c.Abort()
		}
		return
	}
	s.Auth.Require(config.RolePublisher)(c)
}

// errStatus maps the service's errors to responses.
func errStatus(err error) error {
	var in *InputError
	switch {
	case errors.As(err, &in) && errors.Is(err, inputerr.ErrTooLarge):
		return &httpx.Error{Status: http.StatusRequestEntityTooLarge, Msg: in.Msg, Err: err}
	case errors.As(err, &in):
		return httpx.BadRequest("%s", in.Msg)
	case errors.Is(err, store.ErrNotFound):
		return httpx.NotFound("%s", strings.TrimSuffix(err.Error(), ": not found"))
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrInvalid):
		return &httpx.Error{Status: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	return err
}

// dispatch serves everything under /{repo}/{snapshot}/.
func (s *Server) dispatch(c *gin.Context) {
	v, err := s.view(c.Request.Context(), c.Param("repo"), c.Param("snap"))
	if err != nil {
		c.Error(errStatus(err))
		return
	}
	repo := v.repo
	rest := strings.TrimPrefix(c.Param("rest"), "/")
	parts := strings.Split(rest, "/")
	switch {
	case repo.Type == store.Python && parts[0] == "simple":
		s.simple(c, v, parts[1:])
	case repo.Type == store.Python && parts[0] == "packages" && len(parts) == 3:
		s.pythonFile(c, v, parts[1], parts[2])
	case repo.Type == store.R && len(parts) >= 3 && parts[0] == "src" && parts[1] == "contrib":
		s.cran(c, v, parts[2:])
	default:
		c.Error(httpx.NotFound("no page at %s in %s repository %s", c.Request.URL.Path, repo.Type, repo.Name))
	}
}

// view resolves a repository name and a URL's snapshot part.
func (s *Server) view(ctx context.Context, name, snap string) (view, error) {
	repo, err := s.svc.Store.Repo(ctx, name)
	if err != nil {
		return view{}, err
	}
	txn, err := s.svc.Store.Snapshot(ctx, snap)
	if err != nil {
		return view{}, err
	}
	return view{repo: repo, snap: snap, txn: txn, latest: snap == "latest"}, nil
}

// view is a repository at a snapshot.
type view struct {
	repo   store.Repo
	snap   string // as written in the URL
	txn    int64
	latest bool
}

func (v view) base() string { return "/" + v.repo.Name + "/" + v.snap }
