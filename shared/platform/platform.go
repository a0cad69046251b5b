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
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/secrets"
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
	Name string // config.Connect, …
	// Embedded holds the product's migrations in its "migrations"
	// directory (NNNN_name.sql files), as `//go:embed migrations` gives.
	Embedded fs.FS
	// Landing is the product's front page.
	Landing Landing
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

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
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
	// Accounts is the suite's user directory; Auth is the product's
	// sign-in (sessions, API keys, role checks).
	Accounts *accounts.Store
	Auth     *auth.Auth
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
	log := opts.logger().With("component", p.Name)
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
	// Uploads a crash cut short are left in the store's temp area; an
	// hour is far longer than any live upload stalls.
	if n, err := b.Files.Sweep(time.Hour); err != nil {
		log.Warn("sweeping abandoned uploads", "err", err)
	} else if n > 0 {
		log.Info("removed abandoned uploads", "files", n)
	}
	migrations, err := fs.Sub(p.Embedded, "migrations")
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", p.Name, err)
	}
	b.DB, err = db.OpenSuite(ctx, cfg.Shared, p.Name, migrations, log)
	if err != nil {
		return nil, err
	}
	key, err := secrets.LoadOrCreate(cfg.SecretKeyPath())
	if err != nil {
		return nil, err
	}
	if b.Accounts, err = accounts.Open(ctx, cfg, log); err != nil {
		return nil, err
	}
	b.HTTP, err = newHTTP(cfg, p.Name, display, opts.Listener, log, func(ctx context.Context) error {
		return errors.Join(b.DB.Ping(ctx), b.Accounts.Ping(ctx))
	}, Nav(cfg, p.Name))
	if err != nil {
		return nil, err
	}
	issuer := cfg.Auth.Issuer
	if cfg.EmbeddedIdentity() {
		issuer = PublicURL(cfg, config.Identity)
	}
	prod, _ := cfg.Product(p.Name)
	b.Auth, err = auth.New(ctx, auth.Config{
		Product:         p.Name,
		DisplayName:     display,
		PublicURL:       b.URL(),
		Issuer:          issuer,
		Embedded:        cfg.EmbeddedIdentity(),
		ClientID:        prod.OIDCClientID,
		ClientSecret:    ClientSecret(cfg, key, p.Name),
		GroupsClaim:     cfg.Auth.GroupsClaim,
		AdminGroups:     cfg.Auth.AdminGroups,
		PublisherGroups: cfg.Auth.PublisherGroups,
		DefaultRole:     cfg.Auth.DefaultRole,
		SessionLifetime: cfg.Auth.SessionLifetime.D(),
		DB:              b.DB,
		Directory:       directory{b.Accounts},
		Nav:             Nav(cfg, p.Name),
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s sign-in: %w", p.Name, err)
	}
	// Health, readiness and metrics were registered by httpx before this
	// and stay open; everything added from here on knows who is asking.
	e := b.HTTP.Engine()
	e.Use(b.Auth.Middleware(), b.Auth.CSRF())
	b.Auth.Register(e)
	b.serveLanding(p.Landing)
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
	var errs []error
	if b.DB != nil {
		errs = append(errs, b.DB.Close())
		b.DB = nil
	}
	if b.Accounts != nil {
		errs = append(errs, b.Accounts.Close())
		b.Accounts = nil
	}
	return errors.Join(errs...)
}

// Render writes a product page in the suite layout, with the navigation
// and the signed-in user's badge.
func (b *Base) Render(c *gin.Context, status int, title string, body template.HTML) {
	ui.Render(c, status, ui.Page{Product: b.Display, Title: title, Nav: Nav(b.Config, b.Name), Body: body, User: b.Auth.UserBadge(c)})
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
