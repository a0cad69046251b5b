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
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/launcher"
	"github.com/atrium-suite/atrium/shared/platform"
	"github.com/gin-gonic/gin"
)

//go:embed migrations
var migrations embed.FS

// Server is a running Connect.
type Server struct {
	*platform.Base

	st    *store
	tasks *tasks
	rt    *runtime
	stop  context.CancelFunc
	bg    context.Context // cancelled by stop: background work

	// Under DATA_DIR/connect: extracted bundles (apps/{guid}/{bundle_id}),
	// Python environments (envs/{key}), uploads in progress (tmp) and the
	// output of content processes (jobs/{key}.log).
	appsDir, envsDir, tmpDir, jobsDir string
	// liveLogs are the logs of running jobs by key: a read of one writes
	// its gathered lines first (jobLog batches its writes).
	liveLogs sync.Map
	// hostname names this server in job records, so servers sharing a
	// database know whose processes are whose.
	hostname string
	// packageIndex is the simple index environments install from: Package
	// Manager's pypi repository.
	packageIndex string

	pyMu     sync.Mutex
	pys      []interpreter // found once, by pythons
	envLocks map[string]*sync.RWMutex
	// envUsers are the pools whose processes start from each environment
	// (by key), so that deleting it stops them first.
	envUsers map[string]map[*pool]struct{}
	// buildSteps replaces envSteps in tests, which build environments
	// without a package index.
	buildSteps func(python, env, pyBin, index, reqPath string, hasReqs bool, extra []string) (string, [][]string)
	// envLockWait, when set (tests), is told when a build waits for another
	// process's lock on an environment.
	envLockWait func(key string)

	runAs runAs

	// boot is Posit Connect's bootstrap switch (CONNECT_BOOTSTRAP_*).
	boot bootstrapConfig
}

// New opens Connect's database and files and builds its HTTP server.
func New(ctx context.Context, cfg config.Config, opts platform.Options) (*Server, error) {
	base, err := platform.Open(ctx, cfg, platform.Product{
		Name:     config.Connect,
		Embedded: migrations,
		Landing: platform.Landing{
			Lead: "Publish and share data-science content: APIs, apps, reports and notebooks.",
			Extra: func(*gin.Context) (template.HTML, error) {
				return `<p><a href="/connect/">Browse the content</a> published here, with its settings, processes and logs.</p>`, nil
			},
		},
	}, opts)
	if err != nil {
		return nil, err
	}
	boot, err := bootstrapFromEnv(os.Getenv)
	if err != nil {
		base.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &Server{
		boot:         boot,
		Base:         base,
		st:           &store{db: base.DB, now: time.Now},
		appsDir:      filepath.Join(base.DataDir, "apps"),
		envsDir:      filepath.Join(base.DataDir, "envs"),
		tmpDir:       filepath.Join(base.DataDir, "tmp"),
		jobsDir:      filepath.Join(base.DataDir, "jobs"),
		packageIndex: platform.PublicURL(cfg, config.PackageManager) + "/pypi/latest/simple/",
		envLocks:     map[string]*sync.RWMutex{},
		envUsers:     map[string]map[*pool]struct{}{},
	}
	s.hostname, _ = os.Hostname()
	for _, d := range []string{s.appsDir, s.envsDir, s.tmpDir, s.jobsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			base.Close()
			return nil, fmt.Errorf("connect: %w", err)
		}
	}
	if err := s.st.finishHostJobs(ctx, s.hostname); err != nil {
		base.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := s.st.failUnfinished(ctx); err != nil {
		base.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	var bg context.Context
	bg, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.tasks = newTasks(bg, s.st)
	s.rt = &runtime{s: s, launcher: &launcher.Local{Logger: base.Log}, apps: map[string]*app{}}
	s.routes()
	s.bg = bg
	go s.warmAll(bg)
	return s, nil
}

// Run serves until ctx is done; then it ends running deploys, stops the
// content processes and closes the database.
func (s *Server) Run(ctx context.Context) error {
	err := s.HTTP.Serve(ctx)
	s.stop()
	s.tasks.wait()
	s.rt.stopAll()
	return errors.Join(err, s.Base.Close())
}
