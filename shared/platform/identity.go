package platform

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/buildinfo"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/identity"
	"github.com/atrium-suite/atrium/shared/secrets"
	"github.com/atrium-suite/atrium/shared/ui"
)

// AdminPasswordFile is where the first admin's password is written.
func AdminPasswordFile(cfg config.Config) string {
	return filepath.Join(cfg.Shared.DataDir, "admin-password")
}

// ClientSecret is a product's OpenID client secret: the configured one, or
// (embedded provider) the one derived from the suite's secret key, which
// the provider derives the same way.
func ClientSecret(cfg config.Config, key []byte, product string) string {
	p, err := cfg.Product(product)
	if err != nil {
		return ""
	}
	if p.OIDCClientSecret != "" {
		return p.OIDCClientSecret
	}
	return secrets.ClientSecret(key, p.OIDCClientID)
}

// IdentityServer is the running embedded OpenID provider.
type IdentityServer struct {
	cfg      config.Config
	HTTP     *httpx.Server
	Accounts *accounts.Store
	db       *db.DB
	// AdminCreated is true when this start created the first admin.
	AdminCreated bool
}

// OpenIdentity opens the embedded provider: the suite's user directory
// (creating the first admin and its password file on first start), the
// provider's own database, a client registration per product and its HTTP
// server.
func OpenIdentity(ctx context.Context, cfg config.Config, opts Options) (_ *IdentityServer, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.EmbeddedIdentity() {
		return nil, errors.New("auth.issuer names an external provider; the embedded one does not start")
	}
	log := opts.logger().With("component", config.Identity)
	s := &IdentityServer{cfg: cfg}
	defer func() {
		if err != nil {
			s.Close()
			if opts.Listener != nil {
				opts.Listener.Close()
			}
		}
	}()
	key, err := secrets.LoadOrCreate(cfg.SecretKeyPath())
	if err != nil {
		return nil, err
	}
	if s.Accounts, err = accounts.Open(ctx, cfg, log); err != nil {
		return nil, err
	}
	if s.AdminCreated, err = s.Accounts.EnsureAdmin(ctx, AdminPasswordFile(cfg)); err != nil {
		return nil, fmt.Errorf("first admin: %w", err)
	}
	if s.db, err = identity.OpenDB(ctx, cfg, log); err != nil {
		return nil, err
	}
	var clients []identity.Client
	for _, name := range config.Products {
		p, _ := cfg.Product(name)
		u := PublicURL(cfg, name)
		clients = append(clients, identity.Client{
			ID: p.OIDCClientID, Secret: ClientSecret(cfg, key, name), Name: DisplayNames[name],
			RedirectURIs:           []string{u + auth.CallbackPath},
			PostLogoutRedirectURIs: []string{u + "/"},
		})
	}
	var cryptoKey [32]byte
	derived, err := hkdf.Key(sha256.New, key, nil, "atrium identity crypto key", 32)
	if err != nil {
		return nil, err
	}
	copy(cryptoKey[:], derived)
	nav := Nav(cfg, "")
	prov, err := identity.New(ctx, identity.Config{
		Issuer: PublicURL(cfg, config.Identity), DB: s.db, Accounts: s.Accounts,
		Clients: clients, CryptoKey: cryptoKey, Logger: log, Nav: nav,
		SignInLifetime: cfg.Auth.SessionLifetime.D(),
	})
	if err != nil {
		return nil, err
	}
	s.HTTP, err = newHTTP(cfg, config.Identity, "Sign-in", opts.Listener, log, func(ctx context.Context) error {
		return errors.Join(s.db.Ping(ctx), s.Accounts.Ping(ctx))
	}, nav)
	if err != nil {
		return nil, err
	}
	prov.Register(s.HTTP.Engine())
	// The provider's root is where people land if they type the address:
	// send them on to the products.
	s.HTTP.Engine().GET("/", func(c *gin.Context) {
		body, err := ui.Fragment(identityHome, nav)
		if err != nil {
			c.Error(err)
			return
		}
		ui.Render(c, http.StatusOK, ui.Page{Product: "Sign-in", Title: "Sign-in", Nav: nav, Body: body})
	})
	return s, nil
}

var identityHome = template.Must(template.New("home").Parse(`<h1>Atrium sign-in</h1>
<p class="lead">This is the suite's sign-in service. Open a product to sign in:</p>
<ul>{{range .}}<li><a href="{{.URL}}">{{.Name}}</a></li>{{end}}</ul>`))

// URL is the provider's issuer URL.
func (s *IdentityServer) URL() string { return PublicURL(s.cfg, config.Identity) }

// Run serves until ctx is done, then closes the databases.
func (s *IdentityServer) Run(ctx context.Context) error {
	err := s.HTTP.Serve(ctx)
	return errors.Join(err, s.closeStores())
}

// Close releases everything without serving.
func (s *IdentityServer) Close() error {
	var err error
	if s.HTTP != nil {
		err = s.HTTP.Close()
	}
	return errors.Join(err, s.closeStores())
}

func (s *IdentityServer) closeStores() error {
	var errs []error
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	if s.Accounts != nil {
		errs = append(errs, s.Accounts.Close())
		s.Accounts = nil
	}
	return errors.Join(errs...)
}

// newHTTP builds a suite server from its config section.
func newHTTP(cfg config.Config, name, display string, ln net.Listener, log *slog.Logger, ready func(context.Context) error, nav []ui.Link) (*httpx.Server, error) {
	srvCfg, err := cfg.Server(name)
	if err != nil {
		return nil, err
	}
	s, err := httpx.New(httpx.Config{
		Name:              name,
		Version:           buildinfo.String(),
		Addr:              srvCfg.Listen,
		Listener:          ln,
		Logger:            log,
		MaxBodyBytes:      int64(srvCfg.MaxBodyBytes),
		ReadHeaderTimeout: srvCfg.ReadHeaderTimeout.D(),
		IdleTimeout:       srvCfg.IdleTimeout.D(),
		ShutdownTimeout:   srvCfg.ShutdownTimeout.D(),
		Ready:             ready,
		RenderHTMLError:   ui.ErrorRenderer(display, nav),
	})
	if err != nil {
		return nil, fmt.Errorf("%s server: %w", name, err)
	}
	return s, nil
}
