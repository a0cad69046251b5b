// Package packagemanager is Atrium Package Manager: PyPI- and CRAN-style
// repositories that pip, uv, twine and R use unmodified, with local
// uploads, upstream mirroring and dated snapshots.
//
// This package owns Package Manager's tables (its migrations) and files
// (its subdirectory of the data dir); it reaches other products only over
// HTTP.
package packagemanager

import (
	"context"
	"embed"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
)

//go:embed migrations
var migrations embed.FS

// Server is a running Package Manager.
type Server struct {
	*platform.Base
}

// New opens Package Manager's database and files and builds its HTTP server.
func New(ctx context.Context, cfg config.Config, opts platform.Options) (*Server, error) {
	base, err := platform.Open(ctx, cfg, platform.Product{
		Name:     config.PackageManager,
		Embedded: migrations,
		Landing:  platform.Landing{Lead: "PyPI and CRAN repositories for pip, uv, twine and R, with snapshots and upstream mirrors."},
	}, opts)
	if err != nil {
		return nil, err
	}
	return &Server{Base: base}, nil
}
