// Package platform assembles what every Atrium product stands on from the
// suite's configuration: its logger, its database (SQLite file or its own
// PostgreSQL schema), its directory in the data dir, and its HTTP server
// with the suite's health, metrics, error pages and navigation.
//
// A product calls Open with its name and migrations, adds its routes to
// Base.HTTP.Engine(), and calls Run. Keeping this in one place is what makes
// the three products start, log, fail and shut down the same way.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/atrium-suite/atrium/shared/buildinfo"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/storage"
	"github.com/atrium-suite/atrium/shared/ui"
)

// DisplayNames are the products' names as users see them.
var DisplayNames = map[string]string{
	config.Connect:        "Connect",
	config.Workbench:      "Workbench",
	config.PackageManager: "Package Manager",
}

// Product describes the product being opened.
type Product struct {
	Name       string // config.Connect, …
	Migrations fs.FS  // the product's migrations (NNNN_name.sql at the root)
}

// Options are what the caller decides beyond the config file.
type Options struct {
	// Logger is the suite's logger; the product adds its component name.
	Logger *slog.Logger
	// Listener, when set, is served instead of binding the configured
	// address (the suite binds all listeners first so each product can
	// link to the others' real URLs).
	Listener net.Listener
}

// Base is an opened product: everything it needs to serve.
type Base struct {
	Name    string
	Display string
	Config  config.Config
	Log     *slog.Logger
	DB      *db.DB
	Files   *storage.Store
	HTTP    *httpx.Server
	DataDir string
}

// Open validates cfg and opens the product's database, files and server.
// On error everything opened so far is closed again.
func Open(ctx context.Context, cfg config.Config, p Product, opts Options) (_ *Base, err error) {
	display, ok := DisplayNames[p.Name]
	if !ok {
		return nil, fmt.Errorf("unknown product %q", p.Name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srvCfg, _ := cfg.Server(p.Name)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", p.Name)
	b := &Base{Name: p.Name, Display: display, Config: cfg, Log: log}
	defer func() {
		if err != nil {
			b.Close()
			if opts.Listener != nil {
				opts.Listener.Close()
			}
		}
	}()

	b.DataDir, err = filepath.Abs(cfg.ProductDataDir(p.Name))
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(b.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	b.Files, err = storage.New(storage.Config{Root: filepath.Join(b.DataDir, "files")})
	if err != nil {
		return nil, fmt.Errorf("%s files: %w", p.Name, err)
	}
	b.DB, err = db.Open(ctx, db.Config{
		PostgresDSN: cfg.Shared.DatabaseURL,
		SQLitePath:  filepath.Join(b.DataDir, p.Name+".db"),
		Schema:      p.Name,
		Migrations:  p.Migrations,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", p.Name, err)
	}
	b.HTTP, err = httpx.New(httpx.Config{
		Name:              p.Name,
		Version:           buildinfo.String(),
		Addr:              srvCfg.Listen,
		Listener:          opts.Listener,
		Logger:            log,
		MaxBodyBytes:      int64(srvCfg.MaxBodyBytes),
		ReadHeaderTimeout: srvCfg.ReadHeaderTimeout.D(),
		IdleTimeout:       srvCfg.IdleTimeout.D(),
		ShutdownTimeout:   srvCfg.ShutdownTimeout.D(),
		Ready:             b.DB.Ping,
		RenderHTMLError:   ui.ErrorRenderer(display, Nav(cfg, p.Name)),
	})
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", p.Name, err)
	}
	return b, nil
}

// Run serves until ctx is done, shuts down gracefully and closes the
// database.
func (b *Base) Run(ctx context.Context) error {
	err := b.HTTP.Serve(ctx)
	return errors.Join(err, b.closeDB())
}

// Close releases everything without serving (for failed start-ups).
func (b *Base) Close() error {
	var errs []error
	if b.HTTP != nil {
		errs = append(errs, b.HTTP.Close())
	}
	errs = append(errs, b.closeDB())
	return errors.Join(errs...)
}

func (b *Base) closeDB() error {
	if b.DB == nil {
		return nil
	}
	d := b.DB
	b.DB = nil
	return d.Close()
}

// URL is the product's public URL, without a trailing slash.
func (b *Base) URL() string { return PublicURL(b.Config, b.Name) }

// PublicURL is a product's configured public URL or, when none is set, one
// derived from its listen address (a wildcard host becomes localhost, the
// address a browser on the same machine can use).
func PublicURL(cfg config.Config, product string) string {
	srv, err := cfg.Server(product)
	if err != nil {
		return ""
	}
	if srv.PublicURL != "" {
		return strings.TrimSuffix(srv.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(srv.Listen)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}).String()
}

// Nav links every product of the suite, marking the active one.
func Nav(cfg config.Config, active string) []ui.Link {
	var links []ui.Link
	for _, p := range []string{config.Connect, config.Workbench, config.PackageManager} {
		links = append(links, ui.Link{Name: DisplayNames[p], URL: PublicURL(cfg, p) + "/", Active: p == active})
	}
	return links
}

// NewLogger builds the suite's logger from the [shared] settings.
func NewLogger(s config.Shared, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
