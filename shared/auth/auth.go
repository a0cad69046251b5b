// Package auth signs people in to an Atrium product through OpenID Connect
// and identifies API clients by their keys.
//
// Every product is its own OpenID relying party with its own client id, so
// each can run on its own machine; they share the provider (the suite's
// embedded one or an external IdP such as Keycloak) and the user directory,
// not cookies or tables. A sign-in is the authorization-code flow with PKCE,
// state bound to the browser and a nonce checked in the ID token; it ends in
// a server-side session in the product's own database (tables auth_*,
// created through (*db.DB).Migrate with track "auth"). API clients send a
// key in the headers Posit's clients use: "Authorization: Key …" (Connect),
// Basic auth as __token__ (Package Manager) or a Bearer token.
//
// Use it like this:
//
//	a, err := auth.New(ctx, auth.Config{…})
//	r.Use(a.Middleware(), a.CSRF()) // before any route is added
//	a.Register(r)                   // /__auth__/…
//	r.GET("/content", a.Require(auth.RoleViewer), listContent)
//
// Middleware only identifies the caller; Require refuses anonymous callers
// and too-low roles. Every session is re-checked on each request against
// the directory, so locking a user, deleting them, or signing out at the
// embedded provider ends their sessions in every product at once.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/ui"
)

// Config configures one product's sign-in.
type Config struct {
	// Product is the product's name ("connect", "workbench",
	// "packagemanager"). It names the cookies and scopes the API keys.
	Product string
	// DisplayName is the product's name on pages ("Connect").
	DisplayName string
	// PublicURL is how browsers reach the product, without a trailing
	// slash or a path; the redirect URI registered at the provider is
	// PublicURL + "/__auth__/callback". Cookies are Secure when it is https.
	PublicURL string
	// Issuer is the provider's issuer URL (the embedded provider's is
	// http://localhost:5556 by default).
	Issuer string
	// Embedded says the provider is the suite's own: the ID token's sub is
	// the directory's user ID, roles come from the directory, and the
	// token's sid is checked with Directory.SignInActive on every request.
	Embedded bool
	// ClientID and ClientSecret are the product's registration at the
	// provider. An empty secret makes a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// GroupsClaim, AdminGroups, PublisherGroups and DefaultRole map an
	// external provider's groups to a role at each sign-in: admin if in an
	// admin group, else publisher if in a publisher group, else
	// DefaultRole (empty means viewer). With no groups configured the
	// directory's stored role is kept. Ignored when Embedded.
	GroupsClaim     string
	AdminGroups     []string
	PublisherGroups []string
	DefaultRole     string
	// SessionLifetime bounds a session from sign-in; there is no sliding
	// renewal.
	SessionLifetime time.Duration
	// DB is the product's database; New adds the auth_* tables to it.
	DB *db.DB
	// Directory is the suite's user directory.
	Directory Directory
	// Nav is the suite navigation shown on the sign-in pages.
	Nav []ui.Link
	// HTTPClient makes the discovery, JWKS and token requests; nil means a
	// client with a 10-second timeout.
	HTTPClient *http.Client
	// Logger receives sign-ins, sign-outs and failures; nil discards.
	Logger *slog.Logger
	// Now is the clock for sessions and ID-token expiry; nil is time.Now.
	Now func() time.Time
}

// Paths of the routes Register adds. CallbackPath appended to a product's
// public URL is the redirect URI to register at the provider; the
// post-logout redirect URI is the public URL + "/".
const (
	PathPrefix   = "/__auth__"
	LoginPath    = PathPrefix + "/login"
	CallbackPath = PathPrefix + "/callback"
	LogoutPath   = PathPrefix + "/logout"
	MePath       = PathPrefix + "/me"
	KeysPath     = PathPrefix + "/keys"
	UsersPath    = PathPrefix + "/admin/users"
)

var productName = regexp.MustCompile(`^[a-z][a-z0-9]{0,30}$`)

func (c *Config) validate() error {
	switch {
	case !productName.MatchString(c.Product):
		return fmt.Errorf("auth config: Product %q must match %s", c.Product, productName)
	case c.DisplayName == "":
		return errors.New("auth config: DisplayName is required")
	case c.ClientID == "":
		return errors.New("auth config: ClientID is required")
	case len(c.AdminGroups)+len(c.PublisherGroups) > 0 && c.GroupsClaim == "":
		return errors.New("auth config: GroupsClaim is required with AdminGroups or PublisherGroups")
	case c.DefaultRole != "" && roleRank(c.DefaultRole) == 0:
		return fmt.Errorf("auth config: DefaultRole %q is not one of viewer, publisher, admin", c.DefaultRole)
	case c.SessionLifetime <= 0:
		return errors.New("auth config: SessionLifetime must be positive")
	case c.DB == nil:
		return errors.New("auth config: DB is required")
	case c.Directory == nil:
		return errors.New("auth config: Directory is required")
	}
	if err := checkURL("PublicURL", c.PublicURL, false); err != nil {
		return err
	}
	return checkURL("Issuer", c.Issuer, true)
}

// checkURL accepts absolute http(s) URLs without query or fragment; a path
// only where allowed (issuers may have one, products are served at the
// root because their routes and redirects are host-relative).
func checkURL(field, s string, pathOK bool) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return fmt.Errorf("auth config: %s is required", field)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("auth config: %s %q is not an absolute http(s) URL", field, s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("auth config: %s %q must not have a query, fragment or user info", field, s)
	case !pathOK && u.Path != "":
		return fmt.Errorf("auth config: %s %q must not have a path (without a trailing slash)", field, s)
	}
	return nil
}

// Auth is one product's sign-in. It is safe for concurrent use.
type Auth struct {
	cfg        Config
	db         *db.DB
	dir        Directory
	log        *slog.Logger
	now        func() time.Time
	client     *http.Client
	secure     bool // cookies get the Secure attribute
	sessionCk  string
	loginCk    string
	redirect   string
	mapsGroups bool
	// sessions keeps session rows while the database is unchanged.
	sessions db.VersionCache[session]

	// The provider is discovered on first use, not in New: the suite starts
	// the embedded provider together with the products, and an external
	// IdP may be down for a moment; a failed discovery is retried on the
	// next sign-in.
	mu   sync.Mutex
	prov *provider
}

// provider is what discovery tells us.
type provider struct {
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string // "" when the provider has no end_session_endpoint
}

// New validates cfg and adds the auth_* tables to cfg.DB. It does not
// contact the provider.
func New(ctx context.Context, cfg Config) (*Auth, error) {
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.DefaultRole == "" {
		cfg.DefaultRole = RoleViewer
	}
	a := &Auth{
		cfg:        cfg,
		db:         cfg.DB,
		dir:        cfg.Directory,
		log:        cfg.Logger,
		now:        cfg.Now,
		client:     cfg.HTTPClient,
		secure:     strings.HasPrefix(cfg.PublicURL, "https://"),
		sessionCk:  "atrium_" + cfg.Product + "_session",
		loginCk:    "atrium_" + cfg.Product + "_login",
		redirect:   cfg.PublicURL + CallbackPath,
		mapsGroups: !cfg.Embedded && len(cfg.AdminGroups)+len(cfg.PublisherGroups) > 0,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("product", cfg.Product)
	if a.now == nil {
		a.now = time.Now
	}
	if a.client == nil {
		a.client = &http.Client{Timeout: 10 * time.Second}
	}
	if err := cfg.DB.Migrate(ctx, Track, Migrations()); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return a, nil
}

// SessionCookie and LoginCookie are the names of the product's cookies.
// They include the product because browsers do not separate cookies by
// port, and on one host all products share them.
func (a *Auth) SessionCookie() string { return a.sessionCk }

// LoginCookie is the cookie binding a sign-in in progress to the browser.
func (a *Auth) LoginCookie() string { return a.loginCk }

// RedirectURL is the redirect URI to register at the provider.
func (a *Auth) RedirectURL() string { return a.redirect }

// clientContext makes go-oidc and oauth2 use our HTTP client.
func (a *Auth) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, a.client)
}

// provider returns the discovered provider, discovering it if needed.
func (a *Auth) provider(ctx context.Context) (*provider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prov != nil {
		return a.prov, nil
	}
	p, err := oidc.NewProvider(a.clientContext(ctx), a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", a.cfg.Issuer, err)
	}
	var meta struct {
		EndSession  string   `json:"end_session_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discover %s: %w", a.cfg.Issuer, err)
	}
	endpoint := p.Endpoint()
	// Without a hint oauth2 guesses the client authentication style by
	// trying one and then the other, which costs a failed request and a
	// warning in the provider's log on every sign-in.
	switch {
	case a.cfg.ClientSecret == "":
		endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client sends only client_id
	case len(meta.AuthMethods) == 0 || slices.Contains(meta.AuthMethods, "client_secret_basic"):
		endpoint.AuthStyle = oauth2.AuthStyleInHeader // the spec's default
	case slices.Contains(meta.AuthMethods, "client_secret_post"):
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	a.prov = &provider{
		oauth: oauth2.Config{
			ClientID:     a.cfg.ClientID,
			ClientSecret: a.cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  a.redirect,
			Scopes:       []string{oidc.ScopeOpenID, "profile", "email"},
		},
		verifier:   p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID, Now: a.now}),
		endSession: meta.EndSession,
	}
	a.log.Info("discovered the sign-in provider", "issuer", a.cfg.Issuer, "end_session", meta.EndSession != "")
	return a.prov, nil
}
