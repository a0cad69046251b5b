// Package identity is the suite's embedded OpenID provider, used when no
// external one is configured (auth.issuer empty).
//
// It is a plain OpenID Connect provider, built on zitadel/oidc's op
// package, so products talk to it exactly as they would to Keycloak or
// Okta: authorization code flow with PKCE, client_secret_basic or
// client_secret_post, RS256 ID tokens. Users, passwords and provider
// sign-ins come from the accounts directory; this package keeps only the
// protocol's records (auth requests, codes, access tokens) and the signing
// keys, in the suite database under schema "identity". Because all state
// is in the database, several identity servers can share it.
//
// What it adds to the protocol: its own login page in the suite's look,
// single sign-on through a provider cookie (the second product signs in
// without a form), a "sid" claim naming the accounts sign-in so products
// can honour a suite-wide sign-out, and per-username and per-IP limits on
// failed passwords.
package identity

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/ui"
)

// Schema is the provider's database schema and data subdirectory.
const Schema = config.Identity

// Paths the provider serves, relative to the issuer URL. The protocol
// endpoints are also announced by discovery, which is what RPs should use.
const (
	DiscoveryPath     = oidc.DiscoveryEndpoint // /.well-known/openid-configuration
	AuthorizePath     = "/authorize"
	CallbackPath      = "/authorize/callback" // op's, after the login page
	TokenPath         = "/oauth/token"
	UserinfoPath      = "/userinfo"
	IntrospectionPath = "/oauth/introspect"
	RevocationPath    = "/revoke"
	EndSessionPath    = "/end_session"
	KeysPath          = "/keys"
	LoginPath         = "/login"
	SignedOutPath     = "/signed-out" // end_session's landing page without a post_logout_redirect_uri
)

// Defaults for Config.
const (
	DefaultSignInLifetime = 12 * time.Hour
	DefaultKeyRotation    = 30 * 24 * time.Hour
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the provider's tables, for db.Open with Schema "identity".
var Migrations fs.FS = func() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}()

// OpenDB opens (and migrates) the provider's database that cfg names:
// PostgreSQL schema "identity" when shared.database_url is set, otherwise
// DATA_DIR/identity/identity.db.
func OpenDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*db.DB, error) {
	return db.OpenSuite(ctx, cfg.Shared, Schema, Migrations, log)
}

// Client is a product registered with the provider.
type Client struct {
	ID     string
	Secret string
	// Name is shown on the login page ("to continue to Connect"); optional.
	Name string
	// RedirectURIs must contain the exact redirect_uri the product sends
	// (<product URL>/__auth__/callback).
	RedirectURIs []string
	// PostLogoutRedirectURIs are where end_session may send the browser
	// afterwards (<product URL>/).
	PostLogoutRedirectURIs []string
}

// Config configures a Provider.
type Config struct {
	// Issuer is the provider's public URL, e.g. http://localhost:5556. It
	// must be what browsers and products use to reach it: it is the "iss"
	// of every token and the base of every endpoint.
	Issuer string
	// DB is the provider's database (schema "identity"), opened with
	// Migrations (see OpenDB). The caller closes it.
	DB *db.DB
	// Accounts is the suite's user directory.
	Accounts *accounts.Store
	// Clients are the products, registered at start.
	Clients []Client
	// CryptoKey encrypts codes and access tokens and, through a derived
	// key, the stored signing keys and the login form's CSRF tokens.
	// Derive it from the suite's secret key, so every identity server of
	// a cluster has the same.
	CryptoKey [32]byte
	// Logger receives the provider's own logs; nil discards. (zitadel/oidc
	// logs protocol errors through slog's default logger.)
	Logger *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
	// SignInLifetime is how long a provider sign-in (single sign-on)
	// lasts; default 12h.
	SignInLifetime time.Duration
	// KeyRotation is how long a signing key signs; default 30 days. The
	// previous key stays in the JWKS for as long again (at least an ID
	// token's lifetime), so tokens it signed keep verifying.
	KeyRotation time.Duration
	// Nav is the header navigation of the login page (links to the
	// products); optional.
	Nav []ui.Link
}

// Provider is the embedded OpenID provider. Mount it with Register.
type Provider struct {
	cfg      Config
	issuer   string // without trailing slash
	basePath string // the issuer's path, "" at the root
	secure   bool   // issuer is https: cookies get Secure
	log      *slog.Logger
	now      func() time.Time
	accounts *accounts.Store
	store    *storage
	limiter  *limiter
	csrfKey  []byte
	op       *op.Provider
}

func (cfg *Config) validate() (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(cfg.Issuer, "/"))
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("identity: Issuer is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("identity: Issuer %q must be an absolute http(s) URL without query or fragment", cfg.Issuer)
	case cfg.DB == nil:
		return nil, errors.New("identity: DB is required")
	case cfg.Accounts == nil:
		return nil, errors.New("identity: Accounts is required")
	case len(cfg.Clients) == 0:
		return nil, errors.New("identity: at least one client is required")
	case cfg.CryptoKey == [32]byte{}:
		return nil, errors.New("identity: CryptoKey is required")
	case cfg.SignInLifetime < 0 || cfg.KeyRotation < 0:
		return nil, errors.New("identity: SignInLifetime and KeyRotation must not be negative")
	}
	seen := map[string]bool{}
	for _, c := range cfg.Clients {
		switch {
		case c.ID == "":
			return nil, errors.New("identity: a client has no ID")
		case seen[c.ID]:
			return nil, fmt.Errorf("identity: client %q is registered twice", c.ID)
		case len(c.Secret) < 16:
			return nil, fmt.Errorf("identity: client %q: secret must have at least 16 characters", c.ID)
		case len(c.RedirectURIs) == 0:
			return nil, fmt.Errorf("identity: client %q has no redirect URI", c.ID)
		}
		seen[c.ID] = true
		for _, r := range slices.Concat(c.RedirectURIs, c.PostLogoutRedirectURIs) {
			ru, err := url.Parse(r)
			if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" || ru.Fragment != "" {
				return nil, fmt.Errorf("identity: client %q: %q is not an absolute http(s) URL", c.ID, r)
			}
		}
	}
	return u, nil
}

// New validates cfg, makes sure a signing key exists (generating the first
// one), and builds the provider.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SignInLifetime == 0 {
		cfg.SignInLifetime = DefaultSignInLifetime
	}
	if cfg.KeyRotation == 0 {
		cfg.KeyRotation = DefaultKeyRotation
	}
	p := &Provider{
		cfg: cfg, issuer: u.String(), basePath: u.Path, secure: u.Scheme == "https",
		log: cfg.Logger, now: cfg.Now, accounts: cfg.Accounts, limiter: newLimiter(cfg.Now),
	}
	p.csrfKey, err = hkdf.Key(sha256.New, cfg.CryptoKey[:], nil, "atrium identity login csrf", 32)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keys, err := newKeyring(cfg.DB, cfg.CryptoKey, cfg.Now, cfg.KeyRotation, max(cfg.KeyRotation, idTokenLifetime), cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	p.store = &storage{db: cfg.DB, accounts: cfg.Accounts, keys: keys, now: cfg.Now, log: cfg.Logger, provider: p,
		clients: map[string]*client{}}
	for _, c := range cfg.Clients {
		p.store.clients[c.ID] = &client{
			id: c.ID, secret: c.Secret, name: c.Name,
			redirectURIs: slices.Clone(c.RedirectURIs), logoutTo: slices.Clone(c.PostLogoutRedirectURIs),
			loginURL: func(id string) string { return p.issuer + LoginPath + "?authRequestID=" + url.QueryEscape(id) },
		}
	}
	// A missing table, an unreachable database or a changed secret key
	// fails start-up here rather than the first sign-in.
	if _, err := keys.signing(ctx); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}

	opCfg := &op.Config{
		CryptoKey:                cfg.CryptoKey,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		DefaultLogoutRedirectURI: p.issuer + SignedOutPath,
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail},
		SupportedClaims:          append(slices.Clone(op.DefaultSupportedClaims), "sid", "role"),
	}
	var opts []op.Option
	if u.Scheme == "http" {
		// The suite runs on http://localhost by default.
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(opCfg, p.store, op.StaticIssuer(p.issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return p, nil
}

// Issuer is the provider's issuer URL, without a trailing slash.
func (p *Provider) Issuer() string { return p.issuer }

// Register adds the provider's routes to the identity server's engine
// (httpx's, whose /healthz, /readyz and /metrics stay as they are). The
// login pages report errors through httpx's error middleware; the protocol
// endpoints answer in OAuth's own error format, as RPs expect.
func (p *Provider) Register(r gin.IRouter) {
	opHandler := gin.WrapH(p.op)
	r.GET(DiscoveryPath, opHandler)
	r.GET(AuthorizePath, opHandler)
	r.POST(AuthorizePath, opHandler)
	r.GET(CallbackPath, opHandler)
	r.POST(TokenPath, opHandler)
	r.GET(UserinfoPath, opHandler)
	r.POST(UserinfoPath, opHandler)
	r.POST(IntrospectionPath, opHandler)
	r.POST(RevocationPath, opHandler)
	r.GET(KeysPath, opHandler)
	r.GET(EndSessionPath, p.endSession)
	r.POST(EndSessionPath, p.endSession)
	r.GET(LoginPath, p.loginPage)
	r.POST(LoginPath, p.login)
	r.GET(SignedOutPath, p.signedOut)
}
