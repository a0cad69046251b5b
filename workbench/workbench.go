// Package workbench is Atrium Workbench: browser IDE sessions (JupyterLab,
// VS Code, RStudio where installed) for each signed-in user, started by the
// suite's launcher and reached through its proxy.
//
// This package owns Workbench's tables (its migrations) and files (its
// subdirectory of the data dir); it reaches other products only over HTTP.
package workbench

import (
	"context"
	"embed"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
)

//go:embed migrations
var migrations embed.FS

// Server is a running Workbench.
type Server struct {
	*platform.Base
}

// New opens Workbench's database and files and builds its HTTP server.
func New(ctx context.Context, cfg config.Config, opts platform.Options) (*Server, error) {
	base, err := platform.Open(ctx, cfg, platform.Product{
		Name:     config.Workbench,
		Embedded: migrations,
		Landing:  platform.Landing{Lead: "Browser IDE sessions for data scientists: JupyterLab, VS Code and RStudio."},
	}, opts)
	if err != nil {
		return nil, err
	}
	return &Server{Base: base}, nil
}
