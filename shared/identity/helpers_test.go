package identity_test

import (
	"github.com/atrium-suite/atrium/shared/testutil"

	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/identity"
	"github.com/atrium-suite/atrium/shared/ui"
)

// clock is the tests' settable time.
type clock = testutil.Clock

type openFunc = func(t *testing.T, migrations fs.FS) *db.DB

const (
	password     = "correct horse battery"
	connectID    = "atrium-connect"
	workbenchID  = "atrium-workbench"
	connectURL   = "http://connect.test"
	workbenchURL = "http://workbench.test"
	keyRotation  = 30 * 24 * time.Hour
	callbackPath = "/__auth__/callback"
)

func secretOf(id string) string { return "secret-of-" + id + "-0123456789" }

// env is a running provider with two registered products and a user.
type env struct {
	t          *testing.T
	clk        *clock
	accounts   *accounts.Store
	accountsDB *db.DB
	identityDB *db.DB
	provider   *identity.Provider
	issuer     string
	bob        accounts.User
}

func newEnv(t *testing.T, open openFunc) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clk: testutil.NewClock(time.Now().UTC().Truncate(time.Millisecond))}
	e.accountsDB = open(t, accounts.Migrations)
	e.accounts = accounts.OpenDB(e.accountsDB, accounts.WithClock(e.clk.Now), accounts.WithBcryptCost(bcrypt.MinCost))
	var err error
	e.bob, err = e.accounts.AddUser(ctx, accounts.NewUser{Username: "bob", Name: "Bob Builder", Email: "bob@example.com", Password: password, Role: accounts.RolePublisher})
	if err != nil {
		t.Fatal(err)
	}
	e.identityDB = open(t, identity.Migrations)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = "http://" + ln.Addr().String()
	e.provider = e.newProvider(e.issuer)
	e.serveOn(ln, e.provider)
	return e
}

// newProvider makes a provider on the env's databases.
func (e *env) newProvider(issuer string) *identity.Provider {
	e.t.Helper()
	p, err := identity.New(context.Background(), identity.Config{
		Issuer:   issuer,
		DB:       e.identityDB,
		Accounts: e.accounts,
		Clients: []identity.Client{
			{ID: connectID, Secret: secretOf(connectID), Name: "Connect", RedirectURIs: []string{connectURL + callbackPath}, PostLogoutRedirectURIs: []string{connectURL + "/"}},
			{ID: workbenchID, Secret: secretOf(workbenchID), Name: "Workbench", RedirectURIs: []string{workbenchURL + callbackPath}, PostLogoutRedirectURIs: []string{workbenchURL + "/"}},
		},
		CryptoKey:   sha256.Sum256([]byte("test secret key")),
		Now:         e.clk.Now,
		KeyRotation: keyRotation,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// serve runs p on a new httpx server and returns its URL.
func (e *env) serve(p *identity.Provider) string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveOn(ln, p)
	return "http://" + ln.Addr().String()
}

func (e *env) serveOn(ln net.Listener, p *identity.Provider) {
	e.t.Helper()
	srv, err := httpx.New(httpx.Config{Name: "identity", Listener: ln, RenderHTMLError: ui.ErrorRenderer("Sign in", nil)})
	if err != nil {
		ln.Close()
		e.t.Fatal(err)
	}
	p.Register(srv.Engine())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("serve: %v", err)
		}
	})
}

// browser is a user agent with cookies that stops at redirects leaving
// the provider (to a product's callback), so tests can read them.
type browser struct {
	*http.Client
	e *env
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	issuerHost := strings.TrimPrefix(e.issuer, "http://")
	return &browser{e: e, Client: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != issuerHost {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.issuer)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// page is a fetched response with its body read.
type page struct {
	status int
	header http.Header
	body   string
	url    *url.URL // the final URL
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	req.Header.Set("Accept", "text/html")
	resp, err := b.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body), url: resp.Request.URL}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// loginForm is the form on a login page.
type loginForm struct {
	action string
	fields url.Values
}

// parseForm finds the page's form: its action and its hidden fields.
func parseForm(t *testing.T, p page) loginForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	f := loginForm{fields: url.Values{}}
	var names []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
			}
			switch n.Data {
			case "form":
				f.action = attr["action"]
			case "input":
				names = append(names, attr["name"])
				if attr["type"] == "hidden" {
					f.fields.Set(attr["name"], attr["value"])
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if f.action == "" {
		t.Fatalf("no form on the page (status %d):\n%s", p.status, p.body)
	}
	for _, want := range []string{"username", "password", "authRequestID", "csrf"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Fatalf("form has fields %v, want %s", names, want)
		}
	}
	action, err := p.url.Parse(f.action)
	if err != nil {
		t.Fatal(err)
	}
	f.action = action.String()
	return f
}

func (b *browser) submit(f loginForm, username, pw string) page {
	fields := url.Values{}
	for k, v := range f.fields {
		fields[k] = v
	}
	fields.Set("username", username)
	fields.Set("password", pw)
	return b.post(f.action, fields)
}

// rp is a product's relying party: go-oidc and x/oauth2, as the products
// use them.
type rp struct {
	e        *env
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
}

func (e *env) rp(clientID, base string) *rp {
	e.t.Helper()
	p, err := oidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		e.t.Fatal(err)
	}
	return &rp{e: e, provider: p,
		oauth: &oauth2.Config{
			ClientID: clientID, ClientSecret: secretOf(clientID), Endpoint: p.Endpoint(),
			RedirectURL: base + callbackPath, Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: clientID}),
	}
}

// flow is one authorization in progress.
type flow struct {
	state, nonce, verifier string
}

func newFlow() flow {
	return flow{state: oauth2.GenerateVerifier()[:20], nonce: oauth2.GenerateVerifier()[:20], verifier: oauth2.GenerateVerifier()}
}

// start sends the browser to the authorization endpoint; the result is
// either the login form or the redirect back to the product.
func (r *rp) start(b *browser, f flow, extra ...oauth2.AuthCodeOption) page {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oidc.Nonce(f.nonce)}, extra...)
	return b.get(r.oauth.AuthCodeURL(f.state, opts...))
}

// code takes the code out of the redirect to the product's callback.
func (r *rp) code(p page, f flow) string {
	r.e.t.Helper()
	loc := r.callback(p)
	if got := loc.Query().Get("state"); got != f.state {
		r.e.t.Fatalf("state %q, want %q", got, f.state)
	}
	code := loc.Query().Get("code")
	if code == "" {
		r.e.t.Fatalf("no code in %s", loc)
	}
	return code
}

// callback checks that p redirects to the product's callback.
func (r *rp) callback(p page) *url.URL {
	r.e.t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		r.e.t.Fatalf("status %d, want a redirect to the product; body:\n%s", p.status, p.body)
	}
	loc, err := url.Parse(p.header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != r.oauth.RedirectURL {
		r.e.t.Fatalf("redirect to %q, want %s", p.header.Get("Location"), r.oauth.RedirectURL)
	}
	return loc
}

// idClaims are the ID token claims products read.
type idClaims struct {
	Sid               string `json:"sid"`
	PreferredUsername string `json:"preferred_username"`
	Name              string `json:"name"`
	Email             string `json:"email"`
	Role              string `json:"role"`
}

// exchange redeems a code and verifies the ID token as a product would.
func (r *rp) exchange(code string, f flow) (*oauth2.Token, *oidc.IDToken, idClaims, error) {
	tok, err := r.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		return nil, nil, idClaims{}, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, nil, idClaims{}, errors.New("no id_token in the token response")
	}
	idt, err := r.verifier.Verify(context.Background(), raw)
	if err != nil {
		return nil, nil, idClaims{}, err
	}
	if idt.Nonce != f.nonce {
		return nil, nil, idClaims{}, fmt.Errorf("nonce %q, want %q", idt.Nonce, f.nonce)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return nil, nil, idClaims{}, err
	}
	return tok, idt, c, nil
}

// signIn runs the whole flow with the form and returns the ID token.
func (r *rp) signIn(b *browser, username, pw string) (*oauth2.Token, *oidc.IDToken, idClaims) {
	r.e.t.Helper()
	f := newFlow()
	p := r.start(b, f)
	if p.status == http.StatusOK {
		p = b.submit(parseForm(r.e.t, p), username, pw)
	}
	tok, idt, c, err := r.exchange(r.code(p, f), f)
	if err != nil {
		r.e.t.Fatal(err)
	}
	return tok, idt, c
}

// kids lists the key ids the JWKS publishes.
func (e *env) kids() []string {
	e.t.Helper()
	return kidsAt(e.t, e.issuer)
}

func kidsAt(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + identity.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid, Alg, Use, Kty string
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range jwks.Keys {
		if k.Alg != "RS256" || k.Use != "sig" || k.Kty != "RSA" {
			t.Fatalf("JWKS key %+v", k)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}

// signIns counts the sign-ins in the directory.
func (e *env) signIns() int {
	e.t.Helper()
	var n int
	if err := e.accountsDB.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM sign_ins`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) active(sid string) bool {
	e.t.Helper()
	ok, err := e.accounts.SignInActive(context.Background(), sid)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// TestMain quiets zitadel/oidc, which logs refused requests (which these
// tests make on purpose) through slog's default logger.
func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}
