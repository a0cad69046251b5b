package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/auth/authtest"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

func TestNewValidates(t *testing.T) {
	d := dbtest.OpenSQLite(t, fstest.MapFS{})
	dir := newFakeDirectory(time.Now)
	good := func() auth.Config {
		return auth.Config{
			Product: "connect", DisplayName: "Connect", PublicURL: "http://localhost:3939",
			Issuer: "http://localhost:5556", Embedded: true, ClientID: "atrium-connect",
			SessionLifetime: time.Hour, DB: d, Directory: dir,
		}
	}
	tests := []struct {
		name   string
		change func(*auth.Config)
		want   string
	}{
		{"product", func(c *auth.Config) { c.Product = "Connect!" }, "Product"},
		{"display name", func(c *auth.Config) { c.DisplayName = "" }, "DisplayName"},
		{"client id", func(c *auth.Config) { c.ClientID = "" }, "ClientID"},
		{"public url missing", func(c *auth.Config) { c.PublicURL = "" }, "PublicURL is required"},
		{"public url relative", func(c *auth.Config) { c.PublicURL = "/connect" }, "PublicURL"},
		{"public url path", func(c *auth.Config) { c.PublicURL = "http://host/connect" }, "must not have a path"},
		{"public url query", func(c *auth.Config) { c.PublicURL = "http://host?x=1" }, "query"},
		{"issuer", func(c *auth.Config) { c.Issuer = "localhost:5556" }, "Issuer"},
		{"groups claim", func(c *auth.Config) { c.AdminGroups = []string{"admins"} }, "GroupsClaim"},
		{"default role", func(c *auth.Config) { c.DefaultRole = "owner" }, "DefaultRole"},
		{"lifetime", func(c *auth.Config) { c.SessionLifetime = 0 }, "SessionLifetime"},
		{"db", func(c *auth.Config) { c.DB = nil }, "DB"},
		{"directory", func(c *auth.Config) { c.Directory = nil }, "Directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.change(&cfg)
			_, err := auth.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
	t.Run("valid, provider not running", func(t *testing.T) {
		cfg := good()
		cfg.PublicURL += "/" // a trailing slash is forgiven
		a, err := auth.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.RedirectURL(); got != "http://localhost:3939/__auth__/callback" {
			t.Errorf("RedirectURL = %q", got)
		}
		if a.SessionCookie() != "atrium_connect_session" || a.LoginCookie() != "atrium_connect_login" {
			t.Errorf("cookies %q, %q", a.SessionCookie(), a.LoginCookie())
		}
		// New twice on one database: the migrations are applied once.
		if _, err := auth.New(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSignIn(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		s := newSuite(t, authtest.Options{})
		p := s.start(t, open, productOpts{})
		alice := s.dir.add("alice", auth.RoleViewer)
		s.op.SetUser(authtest.User{Subject: alice.ID, SID: "sid-1"})
		b := newBrowser(t)

		// Anonymous: browsers are sent to sign in, API clients get a 401.
		r := b.get(p.url + "/private?tab=2")
		expectStatus(t, r, http.StatusFound)
		if loc := r.Header.Get("Location"); loc != "/__auth__/login?next="+url.QueryEscape("/private?tab=2") {
			t.Fatalf("redirected to %q", loc)
		}
		r = b.api(http.MethodGet, p.url+"/private", nil)
		expectStatus(t, r, http.StatusUnauthorized)
		if !strings.Contains(r.body, `"error":"sign in required"`) {
			t.Errorf("401 body %s", r.body)
		}
		expectStatus(t, b.me(p), http.StatusUnauthorized)
		if r := b.get(p.url + "/__auth__/me"); r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("me for an anonymous browser: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
		}

		// The login redirect carries PKCE S256, a nonce and the state, and
		// the state is bound to the browser by a cookie.
		authURL := b.startLogin(p, "/private?tab=2")
		q := must(url.Parse(authURL)).Query()
		for _, k := range []string{"state", "nonce", "code_challenge"} {
			if q.Get(k) == "" {
				t.Errorf("authorization URL lacks %s: %s", k, authURL)
			}
		}
		if q.Get("code_challenge_method") != "S256" || q.Get("scope") != "openid profile email" ||
			q.Get("redirect_uri") != p.url+"/__auth__/callback" || q.Get("client_id") != "atrium-connect" {
			t.Errorf("authorization URL %s", authURL)
		}

		r = b.get(b.authorize(authURL))
		expectStatus(t, r, http.StatusFound)
		if loc := r.Header.Get("Location"); loc != "/private?tab=2" {
			t.Errorf("after sign-in redirected to %q", loc)
		}
		var session *http.Cookie
		for _, c := range r.Cookies() {
			switch c.Name {
			case "atrium_connect_session":
				session = c
			case "atrium_connect_login":
				if c.MaxAge >= 0 {
					t.Errorf("login cookie not cleared: %v", c)
				}
			}
		}
		if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.Secure {
			t.Fatalf("session cookie %v", session)
		}
		// Only a hash of the token is stored.
		var hash, sid string
		if err := p.db.QueryRowContext(context.Background(), `SELECT token_hash, sid FROM auth_sessions`).Scan(&hash, &sid); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(session.Value))
		if hash != hex.EncodeToString(sum[:]) || sid != "sid-1" {
			t.Errorf("stored session %s/%s", hash, sid)
		}

		r = b.get(p.url + "/private")
		expectStatus(t, r, http.StatusOK)
		if r.body != "hello alice" {
			t.Errorf("private page: %q", r.body)
		}
		r = b.me(p)
		expectStatus(t, r, http.StatusOK)
		var me map[string]string
		if err := json.Unmarshal([]byte(r.body), &me); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"id": alice.ID, "username": "alice", "name": "alice Example", "email": "alice@example.com", "role": "viewer"}
		for k, v := range want {
			if me[k] != v {
				t.Errorf("me[%s] = %q, want %q", k, me[k], v)
			}
		}

		// A viewer is not a publisher, browser or not.
		r = b.get(p.url + "/publish")
		expectStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.body, "requires the publisher role") {
			t.Errorf("403 page: %s", r.body)
		}
		expectStatus(t, b.api(http.MethodGet, p.url+"/publish", nil), http.StatusForbidden)
		// A role change in the directory applies at once.
		if err := s.dir.SetRole(context.Background(), "alice", auth.RolePublisher); err != nil {
			t.Fatal(err)
		}
		expectStatus(t, b.get(p.url+"/publish"), http.StatusOK)

		// Signing in again while signed in goes straight to next.
		r = b.get(p.url + "/__auth__/login?next=/private")
		expectStatus(t, r, http.StatusFound)
		if r.Header.Get("Location") != "/private" {
			t.Errorf("login while signed in: %q", r.Header.Get("Location"))
		}
	})
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(s *suite)
		tamper func(t *testing.T, b *browser, p *product, callback string) response
		status int
		msg    string
		cause  string // in the log
	}{
		{name: "tampered state", status: http.StatusBadRequest, msg: "sign-in state does not match; start again",
			tamper: func(t *testing.T, b *browser, p *product, cb string) response {
				return b.get(replaceQuery(cb, "state", "forged"))
			}},
		{name: "callback in another browser", status: http.StatusBadRequest, msg: "sign-in state does not match",
			// An attacker's own sign-in, completed in the victim's browser
			// (login CSRF), has no login cookie there.
			tamper: func(t *testing.T, b *browser, p *product, cb string) response {
				return newBrowser(t).get(cb)
			}},
		{name: "state unknown to the server", status: http.StatusBadRequest, msg: "sign-in state does not match",
			tamper: func(t *testing.T, b *browser, p *product, cb string) response {
				u := must(url.Parse(p.url))
				b.jar.SetCookies(u, []*http.Cookie{{Name: "atrium_connect_login", Value: "made-up", Path: "/__auth__/"}})
				return b.get(replaceQuery(cb, "state", "made-up"))
			}},
		{name: "replayed callback", status: http.StatusBadRequest, msg: "sign-in state does not match",
			tamper: func(t *testing.T, b *browser, p *product, cb string) response {
				u := must(url.Parse(p.url))
				login := cookie(b.jar.Cookies(must(u.Parse("/__auth__/"))), "atrium_connect_login")
				expectStatus(t, b.get(cb), http.StatusFound)
				// The attacker kept a copy of the login cookie.
				b.jar.SetCookies(u, []*http.Cookie{{Name: "atrium_connect_login", Value: login, Path: "/__auth__/"}})
				b.jar.SetCookies(u, []*http.Cookie{{Name: "atrium_connect_session", Value: "x", Path: "/", MaxAge: -1}})
				if err := deleteSessions(p); err != nil {
					t.Fatal(err)
				}
				return b.get(cb)
			}},
		{name: "expired sign-in", status: http.StatusBadRequest, msg: "sign-in state does not match",
			tamper: func(t *testing.T, b *browser, p *product, cb string) response {
				p.clock.Advance(11 * time.Minute)
				return b.get(cb)
			}},
		{name: "refused at the provider", status: http.StatusForbidden, msg: "the sign-in provider refused: access_denied (the user said no)",
			setup: func(s *suite) { s.op.DenyNext("access_denied", "the user said no") }},
		{name: "provider failure", status: http.StatusBadGateway, msg: "the sign-in provider refused: server_error",
			setup: func(s *suite) { s.op.DenyNext("server_error", "") }},
		{name: "other issuer", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "issued by a different provider",
			setup: modify(func(c map[string]any) { c["iss"] = "https://evil.example" })},
		{name: "other audience", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "expected audience",
			setup: modify(func(c map[string]any) { c["aud"] = "atrium-workbench" })},
		{name: "several audiences without azp", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "authorized party",
			setup: modify(func(c map[string]any) { c["aud"] = []string{"atrium-connect", "other"} })},
		{name: "azp of another client", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "authorized party",
			setup: modify(func(c map[string]any) { c["azp"] = "other" })},
		{name: "expired ID token", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "token is expired",
			setup: modify(func(c map[string]any) { c["exp"] = c["iat"].(int64) - 60 })},
		{name: "nonce mismatch", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "nonce does not match",
			setup: modify(func(c map[string]any) { c["nonce"] = "replayed-token-nonce" })},
		{name: "nonce missing", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "nonce does not match",
			setup: modify(func(c map[string]any) { delete(c, "nonce") })},
		{name: "access token hash mismatch", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "access token hash does not match",
			setup: modify(func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" })},
		{name: "bad signature", status: http.StatusUnauthorized, msg: "the sign-in could not be verified", cause: "failed to verify signature",
			setup: func(s *suite) { s.op.SignWithWrongKey(true) }},
		{name: "locked user", status: http.StatusForbidden, msg: "This account is locked.",
			setup: func(s *suite) { s.dir.SetLocked(context.Background(), "alice", true) }},
		{name: "user gone", status: http.StatusForbidden, msg: "This account does not exist here.",
			setup: func(s *suite) {
				u, _ := s.dir.get("alice")
				s.dir.remove(u.ID)
			}},
	}
	forEachDialect(t, func(t *testing.T, open opener) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newSuite(t, authtest.Options{})
				p := s.start(t, open, productOpts{})
				alice := s.dir.add("alice", auth.RoleViewer)
				s.op.SetUser(authtest.User{Subject: alice.ID})
				if tt.setup != nil {
					tt.setup(s)
				}
				b := newBrowser(t)
				cb := b.authorize(b.startLogin(p, "/private"))
				var r response
				if tt.tamper != nil {
					r = tt.tamper(t, b, p, cb)
				} else {
					r = b.get(cb)
				}
				expectStatus(t, r, tt.status)
				if !strings.Contains(r.body, tt.msg) {
					t.Errorf("page does not say %q: %s", tt.msg, r.body)
				}
				if n := p.sessions(t); n != 0 {
					t.Errorf("%d sessions created", n)
				}
				if !strings.Contains(p.logs.String(), tt.cause) {
					t.Errorf("log does not say %q:\n%s", tt.cause, p.logs)
				}
				expectStatus(t, b.me(p), http.StatusUnauthorized)
			})
		}
		t.Run("code of another sign-in", func(t *testing.T) {
			s := newSuite(t, authtest.Options{})
			p := s.start(t, open, productOpts{})
			alice := s.dir.add("alice", auth.RoleViewer)
			s.op.SetUser(authtest.User{Subject: alice.ID})
			// The attacker's code, pasted into the victim's own sign-in:
			// the victim's state and cookie are fine, but the code was
			// issued for the attacker's PKCE challenge.
			attacker, victim := newBrowser(t), newBrowser(t)
			code := must(url.Parse(attacker.authorize(attacker.startLogin(p, "/")))).Query().Get("code")
			cb := victim.authorize(victim.startLogin(p, "/"))
			r := victim.get(replaceQuery(cb, "code", code))
			expectStatus(t, r, http.StatusBadGateway)
			if n := p.sessions(t); n != 0 {
				t.Errorf("%d sessions created", n)
			}
		})
	})
}

func modify(fn func(map[string]any)) func(*suite) {
	return func(s *suite) { s.op.ModifyClaims(fn) }
}

func deleteSessions(p *product) error {
	_, err := p.db.ExecContext(context.Background(), `DELETE FROM auth_sessions`)
	return err
}

func replaceQuery(u, key, value string) string {
	pu := must(url.Parse(u))
	q := pu.Query()
	q.Set(key, value)
	pu.RawQuery = q.Encode()
	return pu.String()
}

func cookie(cs []*http.Cookie, name string) string {
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDiscoveryIsLazyAndRetried(t *testing.T) {
	s := newSuite(t, authtest.Options{})
	s.op.SetDown(true)
	p := s.start(t, dbtest.OpenSQLite, productOpts{}) // New succeeds with the provider down
	alice := s.dir.add("alice", auth.RoleViewer)
	s.op.SetUser(authtest.User{Subject: alice.ID})
	b := newBrowser(t)
	r := b.get(p.url + "/__auth__/login")
	expectStatus(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(r.body, "cannot be reached; try again in a moment") {
		t.Errorf("page: %s", r.body)
	}
	s.op.SetDown(false)
	b.login(p, "/")
	expectStatus(t, b.me(p), http.StatusOK)
}

func TestNextIsLocal(t *testing.T) {
	s := newSuite(t, authtest.Options{})
	p := s.start(t, dbtest.OpenSQLite, productOpts{})
	alice := s.dir.add("alice", auth.RoleViewer)
	s.op.SetUser(authtest.User{Subject: alice.ID})
	for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", "/\t/evil.example", "javascript:alert(1)", "evil", ""} {
		t.Run(next, func(t *testing.T) {
			b := newBrowser(t)
			r := b.login(p, next)
			if loc := r.Header.Get("Location"); loc != "/" {
				t.Errorf("next %q: redirected to %q", next, loc)
			}
		})
	}
	b := newBrowser(t)
	if loc := b.login(p, "/apps/1?x=%2F%2Fy#frag").Header.Get("Location"); loc != "/apps/1?x=%2F%2Fy#frag" {
		t.Errorf("local next changed to %q", loc)
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/content/42?tab=logs", "/content/42?tab=logs"},
		{"/a//b", "/a//b"},
		{"", "/"},
		{"//evil", "/"},
		{"///evil", "/"},
		{"/\\evil", "/"},
		{"\\\\evil", "/"},
		{"https://evil", "/"},
		{"HTTPS://evil", "/"},
		{"javascript:alert(1)", "/"},
		{"evil/path", "/"},
		{"/\t/evil", "/"},
		{"/\n/evil", "/"},
		{"/ok\\..\\..\\evil", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	}
	for _, tt := range tests {
		if got := auth.SafeNext(tt.in); got != tt.want {
			t.Errorf("SafeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "/\\evil", "https://x", "/%2F%2Fevil", "/\x00", "/@evil", "/.//evil"} {
		f.Add(s)
	}
	base := must(url.Parse("https://product.example/some/page"))
	f.Fuzz(func(t *testing.T, next string) {
		got := auth.SafeNext(next)
		if got != "/" && got != next {
			t.Fatalf("SafeNext(%q) = %q: neither the input nor /", next, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("SafeNext(%q) = %q is not a local path", next, got)
		}
		// What a browser would make of it stays on this host. Browsers
		// drop tabs and newlines first and treat \ as /.
		browserish := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(got)
		u, err := url.Parse(browserish)
		if err != nil {
			t.Fatalf("SafeNext(%q) = %q does not parse: %v", next, got, err)
		}
		if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
			t.Fatalf("SafeNext(%q) = %q leads to %s", next, got, r)
		}
	})
}

func TestParseAuthorization(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header string
		key    string
		ok     bool
	}{
		{"Key abc123", "abc123", true},
		{"key abc123", "abc123", true},
		{"Bearer abc123", "abc123", true},
		{"BEARER   abc123  ", "abc123", true},
		{basic("__token__:abc123"), "abc123", true},
		{basic("__token__:a:b"), "a:b", true},
		{basic("alice:secret"), "", false},
		{basic("__token__:"), "", false},
		{basic("__token__"), "", false},
		{"Basic !!!", "", false},
		{"Key", "", false},
		{"Key ", "", false},
		{"Key a b", "", false},
		{"Key a\x00b", "", false},
		{"Key " + strings.Repeat("k", 513), "", false},
		{"Digest abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		key, ok := auth.ParseAuthorization(tt.header)
		if key != tt.key || ok != tt.ok {
			t.Errorf("ParseAuthorization(%q) = %q, %v; want %q, %v", tt.header, key, ok, tt.key, tt.ok)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Key abc", "Bearer abc", "Basic X190b2tlbl9fOmFiYw==", "Basic", "key  x", "Basic Og=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		key, ok := auth.ParseAuthorization(header)
		if !ok {
			if key != "" {
				t.Fatalf("refused %q but returned key %q", header, key)
			}
			return
		}
		if key == "" || len(key) > 512 || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("ParseAuthorization(%q) accepted key %q", header, key)
		}
		// Every style carries the same key.
		for _, h := range []string{"Key " + key, "Bearer " + key, "Basic " + base64.StdEncoding.EncodeToString([]byte("__token__:"+key))} {
			if k2, ok2 := auth.ParseAuthorization(h); !ok2 || k2 != key {
				t.Fatalf("%q: got %q, %v; want %q", h, k2, ok2, key)
			}
		}
	})
}
