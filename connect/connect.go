// Package connect is Atrium Connect: the server that publishes and serves
// data-science content (APIs, apps, documents) and speaks the Posit Connect
// Server API so that rsconnect-python and posit-sdk work against it.
//
// This package owns Connect's tables (its migrations) and files (its
// subdirectory of the data dir); it reaches other products only over HTTP.
package connect

import (
	"context"
	"embed"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
)

//go:embed migrations
var migrations embed.FS

// Server is a running Connect.
type Server struct {
	*platform.Base
}

// New opens Connect's database and files and builds its HTTP server.
func New(ctx context.Context, cfg config.Config, opts platform.Options) (*Server, error) {
	base, err := platform.Open(ctx, cfg, platform.Product{
		Name:     config.Connect,
		Embedded: migrations,
		Landing:  platform.Landing{Lead: "Publish and share data-science content: APIs, apps, reports and notebooks."},
	}, opts)
	if err != nil {
		return nil, err
	}
	return &Server{Base: base}, nil
}
