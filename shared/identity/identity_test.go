package identity_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/identity"
)

// TestCodeFlow: a product signs a user in with the form, verifies the ID
// token, and a second product then signs in without a form (single
// sign-on).
func TestCodeFlow(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		e := newEnv(t, open)
		b := e.browser()
		connect, workbench := e.rp(connectID, connectURL), e.rp(workbenchID, workbenchURL)

		f := newFlow()
		p := connect.start(b, f)
		if p.status != http.StatusOK || !strings.Contains(p.body, "Sign in") || !strings.Contains(p.body, "Connect") {
			t.Fatalf("login page: status %d\n%s", p.status, p.body)
		}
		if got := p.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("login page Cache-Control %q", got)
		}
		p = b.submit(parseForm(t, p), "Bob", password) // usernames are not case-sensitive
		tok, idt, claims, err := connect.exchange(connect.code(p, f), f)
		if err != nil {
			t.Fatal(err)
		}
		if idt.Issuer != e.issuer || idt.Subject != e.bob.ID || !slices.Equal(idt.Audience, []string{connectID}) ||
			!idt.Expiry.After(time.Now()) || idt.Expiry.After(time.Now().Add(time.Hour+time.Minute)) {
			t.Fatalf("ID token: iss %s sub %s aud %v exp %v", idt.Issuer, idt.Subject, idt.Audience, idt.Expiry)
		}
		want := idClaims{PreferredUsername: "bob", Name: "Bob Builder", Email: "bob@example.com", Role: "publisher", Sid: claims.Sid}
		if claims != want || claims.Sid == "" || !e.active(claims.Sid) {
			t.Fatalf("claims %+v, want %+v with an active sid", claims, want)
		}

		// The session cookie is HttpOnly, SameSite=Lax, not Secure on http.
		ck := b.cookie(identity.SessionCookie)
		if ck == "" {
			t.Fatal("no session cookie")
		}
		if _, u, err := e.accounts.SignInByToken(context.Background(), ck); err != nil || u.ID != e.bob.ID {
			t.Fatalf("cookie's sign-in: %+v, %v", u, err)
		}

		// userinfo with the access token.
		info, err := connect.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var ic idClaims
		if err := info.Claims(&ic); err != nil || info.Subject != e.bob.ID || ic.PreferredUsername != "bob" || ic.Role != "publisher" {
			t.Fatalf("userinfo = %+v %+v, %v", info, ic, err)
		}

		// Single sign-on: Workbench gets its code without a form, in the
		// same provider sign-in.
		f2 := newFlow()
		p = workbench.start(b, f2)
		_, idt2, claims2, err := workbench.exchange(workbench.code(p, f2), f2)
		if err != nil {
			t.Fatal(err)
		}
		if idt2.Subject != e.bob.ID || claims2.Sid != claims.Sid {
			t.Fatalf("SSO: sub %s sid %s, want %s %s", idt2.Subject, claims2.Sid, e.bob.ID, claims.Sid)
		}
		if n := e.signIns(); n != 1 {
			t.Fatalf("%d sign-ins, want 1", n)
		}

		// Another browser has no session: it sees the form.
		if p := connect.start(e.browser(), newFlow()); p.status != http.StatusOK {
			t.Fatalf("fresh browser: status %d", p.status)
		}
	})
}

// TestClientAuth: client_secret_basic and client_secret_post both work; a
// wrong secret, a replayed code, a wrong verifier and a code for another
// client are refused.
func TestClientAuth(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		e := newEnv(t, open)
		b := e.browser()
		connect := e.rp(connectID, connectURL)
		// A first sign-in so later ones go without the form.
		connect.signIn(b, "bob", password)

		codeFor := func(r *rp) (string, flow) {
			f := newFlow()
			return r.code(r.start(b, f), f), f
		}
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			r := e.rp(connectID, connectURL)
			r.oauth.Endpoint.AuthStyle = style
			code, f := codeFor(r)
			if _, _, _, err := r.exchange(code, f); err != nil {
				t.Fatalf("auth style %d: %v", style, err)
			}
			// The same code again.
			if _, _, _, err := r.exchange(code, f); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("auth style %d: replayed code: %v", style, err)
			}

			wrong := e.rp(connectID, connectURL)
			wrong.oauth.Endpoint.AuthStyle = style
			wrong.oauth.ClientSecret = "not-the-secret-0123456789"
			code, f = codeFor(wrong)
			if _, _, _, err := wrong.exchange(code, f); !isOAuthError(err, "invalid_client") {
				t.Fatalf("auth style %d: wrong secret: %v", style, err)
			}
		}

		// A code redeemed with the wrong PKCE verifier.
		code, f := codeFor(connect)
		f.verifier = oauth2.GenerateVerifier()
		if _, _, _, err := connect.exchange(code, f); !isOAuthError(err, "invalid_grant") {
			t.Fatalf("wrong verifier: %v", err)
		}

		// Workbench cannot redeem Connect's code.
		code, f = codeFor(connect)
		workbench := e.rp(workbenchID, workbenchURL)
		workbench.oauth.RedirectURL = connect.oauth.RedirectURL
		if _, _, _, err := workbench.exchange(code, f); err == nil {
			t.Fatal("another client redeemed the code")
		}

		// An expired code.
		code, f = codeFor(connect)
		e.clk.Advance(time.Minute)
		if _, _, _, err := connect.exchange(code, f); !isOAuthError(err, "invalid_grant") {
			t.Fatalf("expired code: %v", err)
		}
	})
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

// TestAuthorizeRefused: requests without PKCE, with plain PKCE, without
// openid, or with an unregistered redirect URI are refused.
func TestAuthorizeRefused(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		e := newEnv(t, open)
		connect := e.rp(connectID, connectURL)
		for _, tc := range []struct {
			name    string
			query   url.Values
			wantErr string // error= in the redirect back; "" means a 400 page
		}{
			{"no PKCE", url.Values{}, "invalid_request"},
			{"plain PKCE", url.Values{"code_challenge": {"abcdefghijklmnopqrstuvwxyz0123456789abcdefg"}, "code_challenge_method": {"plain"}}, "invalid_request"},
			{"no openid scope", url.Values{"scope": {"profile"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}, "invalid_scope"},
			{"unregistered redirect", url.Values{"redirect_uri": {"http://evil.test/cb"}}, ""},
			{"unknown client", url.Values{"client_id": {"nobody"}}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := url.Values{"client_id": {connectID}, "response_type": {"code"}, "scope": {"openid profile"},
					"redirect_uri": {connect.oauth.RedirectURL}, "state": {"st"}}
				for k, v := range tc.query {
					q[k] = v
				}
				p := e.browser().get(e.issuer + identity.AuthorizePath + "?" + q.Encode())
				if tc.wantErr == "" {
					if p.status != http.StatusBadRequest {
						t.Fatalf("status %d, want 400", p.status)
					}
					return
				}
				loc := connect.callback(p)
				if got := loc.Query().Get("error"); got != tc.wantErr {
					t.Fatalf("error %q (%s), want %s", got, loc.Query().Get("error_description"), tc.wantErr)
				}
			})
		}
		if n := e.signIns(); n != 0 {
			t.Fatalf("%d sign-ins", n)
		}
	})
}

// TestLoginRefused: wrong passwords, locked users and stale or forged
// forms create nothing.
func TestLoginRefused(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		e := newEnv(t, open)
		connect := e.rp(connectID, connectURL)
		if _, err := e.accounts.AddUser(ctx, accounts.NewUser{Username: "carol", Password: password}); err != nil {
			t.Fatal(err)
		}
		if err := e.accounts.SetLocked(ctx, "carol", true); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name       string
			user, pw   string
			mangle     func(f *loginForm, b *browser)
			wantStatus int
			wantText   string
		}{
			{name: "wrong password", user: "bob", pw: "wrong password", wantStatus: http.StatusUnauthorized, wantText: "Wrong username or password."},
			{name: "unknown user", user: "nobody", pw: password, wantStatus: http.StatusUnauthorized, wantText: "Wrong username or password."},
			{name: "locked user", user: "carol", pw: password, wantStatus: http.StatusForbidden, wantText: "This account is locked."},
			{name: "no CSRF token", user: "bob", pw: password, mangle: func(f *loginForm, _ *browser) { f.fields.Del("csrf") },
				wantStatus: http.StatusForbidden, wantText: "The sign-in form expired"},
			{name: "forged CSRF token", user: "bob", pw: password, mangle: func(f *loginForm, _ *browser) { f.fields.Set("csrf", "forged") },
				wantStatus: http.StatusForbidden, wantText: "The sign-in form expired"},
			{name: "CSRF cookie missing", user: "bob", pw: password, mangle: func(_ *loginForm, b *browser) {
				u, _ := url.Parse(b.e.issuer)
				b.Jar.SetCookies(u, []*http.Cookie{{Name: identity.CSRFCookie, Value: "", MaxAge: -1, Path: "/"}})
			}, wantStatus: http.StatusForbidden, wantText: "The sign-in form expired"},
			{name: "unknown auth request", user: "bob", pw: password, mangle: func(f *loginForm, _ *browser) { f.fields.Set("authRequestID", "nope") },
				wantStatus: http.StatusBadRequest, wantText: "expired or is not valid"},
			{name: "expired auth request", user: "bob", pw: password, mangle: func(*loginForm, *browser) { e.clk.Advance(10 * time.Minute) },
				wantStatus: http.StatusBadRequest, wantText: "expired or is not valid"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := e.browser()
				f := parseForm(t, connect.start(b, newFlow()))
				if tc.mangle != nil {
					tc.mangle(&f, b)
				}
				p := b.submit(f, tc.user, tc.pw)
				if p.status != tc.wantStatus || !strings.Contains(p.body, tc.wantText) {
					t.Fatalf("status %d, want %d with %q; body:\n%s", p.status, tc.wantStatus, tc.wantText, p.body)
				}
				if b.cookie(identity.SessionCookie) != "" {
					t.Fatal("session cookie set")
				}
				if n := e.signIns(); n != 0 {
					t.Fatalf("%d sign-ins created", n)
				}
			})
		}

		// Unknown auth request on GET.
		p := e.browser().get(e.issuer + identity.LoginPath + "?authRequestID=nope")
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired or is not valid") {
			t.Fatalf("GET unknown auth request: %d\n%s", p.status, p.body)
		}
	})
}

// TestRateLimit: five failures lock out the username (and the client
// address) for five minutes, even for the right password.
func TestRateLimit(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		e := newEnv(t, open)
		connect := e.rp(connectID, connectURL)
		b := e.browser()
		try := func(user, pw string) page {
			t.Helper()
			return b.submit(parseForm(t, connect.start(b, newFlow())), user, pw)
		}
		for i := range 5 {
			if p := try("bob", "wrong password"); p.status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: status %d", i+1, p.status)
			}
			e.clk.Advance(10 * time.Second)
		}
		p := try("bob", password)
		if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Too many sign-in attempts; try again in 5 minutes.") {
			t.Fatalf("after 5 failures: status %d\n%s", p.status, p.body)
		}
		if p.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		// The address is limited too: another user from here is refused.
		if _, err := e.accounts.AddUser(ctx, accounts.NewUser{Username: "dave", Password: password}); err != nil {
			t.Fatal(err)
		}
		if p := try("dave", password); p.status != http.StatusTooManyRequests {
			t.Fatalf("other user, same address: status %d", p.status)
		}
		if n := e.signIns(); n != 0 {
			t.Fatalf("%d sign-ins", n)
		}
		// The first failure leaves the window 5 minutes after it happened.
		e.clk.Advance(5*time.Minute - 51*time.Second)
		if p := try("bob", password); p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "try again in 1 minute.") {
			t.Fatalf("just before the window ends: status %d\n%s", p.status, p.body)
		}
		e.clk.Advance(time.Minute)
		f := newFlow()
		p = b.submit(parseForm(t, connect.start(b, f)), "bob", password)
		if _, _, _, err := connect.exchange(connect.code(p, f), f); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEndSession: signing out ends the provider sign-in, clears the cookie
// and redirects to the product; the next authorization shows the form.
func TestEndSession(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		e := newEnv(t, open)
		connect, workbench := e.rp(connectID, connectURL), e.rp(workbenchID, workbenchURL)
		b := e.browser()
		tok, _, claims := connect.signIn(b, "bob", password)
		rawID, _ := tok.Extra("id_token").(string)

		// An unregistered post-logout URI is refused and ends nothing.
		q := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {"http://evil.test/"}}
		if p := b.get(e.issuer + identity.EndSessionPath + "?" + q.Encode()); p.status != http.StatusBadRequest {
			t.Fatalf("bad redirect: status %d", p.status)
		}
		if !e.active(claims.Sid) || b.cookie(identity.SessionCookie) == "" {
			t.Fatal("refused sign-out ended the sign-in")
		}

		q = url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {connectURL + "/"}, "state": {"s1"}}
		p := b.get(e.issuer + identity.EndSessionPath + "?" + q.Encode())
		if p.status != http.StatusFound || p.header.Get("Location") != connectURL+"/?state=s1" {
			t.Fatalf("end_session: status %d, Location %q", p.status, p.header.Get("Location"))
		}
		if e.active(claims.Sid) {
			t.Fatal("sign-in still active")
		}
		if b.cookie(identity.SessionCookie) != "" {
			t.Fatal("session cookie not cleared")
		}
		if _, err := connect.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err == nil {
			t.Fatal("userinfo answers for an ended sign-in")
		}
		if p := workbench.start(b, newFlow()); p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("after sign-out: status %d, want the form", p.status)
		}

		// Without a redirect URI: the signed-out page. POST works too.
		_, _, claims = connect.signIn(b, "bob", password)
		p = b.post(e.issuer+identity.EndSessionPath, url.Values{})
		if p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out.") || p.url.Path != identity.SignedOutPath {
			t.Fatalf("end_session without redirect: status %d at %s\n%s", p.status, p.url, p.body)
		}
		if e.active(claims.Sid) || b.cookie(identity.SessionCookie) != "" {
			t.Fatal("sign-in survived")
		}

		// The sid in the id_token_hint is ended even when the request
		// comes without the browser's cookie.
		tok, _, claims = connect.signIn(b, "bob", password)
		rawID, _ = tok.Extra("id_token").(string)
		q = url.Values{"id_token_hint": {rawID}}
		if p := e.browser().get(e.issuer + identity.EndSessionPath + "?" + q.Encode()); p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out.") {
			t.Fatalf("end_session with only a hint: status %d", p.status)
		}
		if e.active(claims.Sid) {
			t.Fatal("hint's sign-in still active")
		}

		// client_id instead of id_token_hint (a product whose ID token is
		// gone) also validates the redirect.
		_, _, claims = connect.signIn(b, "bob", password)
		q = url.Values{"client_id": {connectID}, "post_logout_redirect_uri": {connectURL + "/"}}
		if p := b.get(e.issuer + identity.EndSessionPath + "?" + q.Encode()); p.status != http.StatusFound || p.header.Get("Location") != connectURL+"/" {
			t.Fatalf("end_session with client_id: status %d, Location %q", p.status, p.header.Get("Location"))
		}
		if e.active(claims.Sid) {
			t.Fatal("sign-in still active")
		}
	})
}

// TestPrompts: prompt=login shows the form despite a session and starts a
// new sign-in (ending the old); prompt=none without a session returns
// login_required; locking a user stops single sign-on.
func TestPrompts(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		e := newEnv(t, open)
		connect := e.rp(connectID, connectURL)
		b := e.browser()

		// prompt=none without a session.
		loc := connect.callback(connect.start(b, newFlow(), oauth2.SetAuthURLParam("prompt", "none")))
		if got := loc.Query().Get("error"); got != "login_required" {
			t.Fatalf("prompt=none: error %q", got)
		}

		_, _, first := connect.signIn(b, "bob", password)
		// prompt=none with a session: straight back with a code.
		f := newFlow()
		if _, _, c, err := connect.exchange(connect.code(connect.start(b, f, oauth2.SetAuthURLParam("prompt", "none")), f), f); err != nil || c.Sid != first.Sid {
			t.Fatalf("prompt=none with session: %+v, %v", c, err)
		}

		f = newFlow()
		p := connect.start(b, f, oauth2.SetAuthURLParam("prompt", "login"))
		if p.status != http.StatusOK {
			t.Fatalf("prompt=login: status %d", p.status)
		}
		_, _, second, err := connect.exchange(connect.code(b.submit(parseForm(t, p), "bob", password), f), f)
		if err != nil {
			t.Fatal(err)
		}
		if second.Sid == first.Sid || e.active(first.Sid) || !e.active(second.Sid) {
			t.Fatalf("prompt=login: sid %s -> %s, old active %v", first.Sid, second.Sid, e.active(first.Sid))
		}

		// max_age=0 also forces the form.
		if p := connect.start(b, newFlow(), oauth2.SetAuthURLParam("max_age", "0")); p.status != http.StatusOK {
			t.Fatalf("max_age=0: status %d", p.status)
		}

		if err := e.accounts.SetLocked(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		if p := connect.start(b, newFlow()); p.status != http.StatusOK {
			t.Fatalf("locked user's browser: status %d, want the form", p.status)
		}
	})
}

// TestKeyRotation: after KeyRotation a new key signs; the old one stays in
// the JWKS for another period, so its tokens still verify, then goes.
func TestKeyRotation(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		e := newEnv(t, open)
		connect := e.rp(connectID, connectURL)
		b := e.browser()
		kids := e.kids()
		if len(kids) != 1 {
			t.Fatalf("JWKS %v, want one key", kids)
		}
		tok1, idt1, _ := connect.signIn(b, "bob", password)
		if kid := keyID(t, tok1); kid != kids[0] {
			t.Fatalf("signed with %s, JWKS has %v", kid, kids)
		}

		e.clk.Advance(keyRotation)
		tok2, _, _ := connect.signIn(b, "bob", password)
		kid2 := keyID(t, tok2)
		if kid2 == kids[0] {
			t.Fatal("not rotated")
		}
		if got := e.kids(); !slices.Equal(got, []string{kid2, kids[0]}) {
			t.Fatalf("JWKS after rotation %v, want [%s %s]", got, kid2, kids[0])
		}
		// A fresh RP (empty key cache) still verifies the old token.
		raw1, _ := tok1.Extra("id_token").(string)
		fresh := e.rp(connectID, connectURL)
		if idt, err := fresh.verifier.Verify(context.Background(), raw1); err != nil || idt.Subject != idt1.Subject {
			t.Fatalf("old token after rotation: %v", err)
		}

		e.clk.Advance(keyRotation)
		tok3, _, _ := connect.signIn(b, "bob", password)
		kid3 := keyID(t, tok3)
		if got := e.kids(); !slices.Equal(got, []string{kid3, kid2}) {
			t.Fatalf("JWKS after second rotation %v, want [%s %s]", got, kid3, kid2)
		}

		// Keys older than that are deleted.
		var n int
		if err := e.identityDB.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM signing_keys`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d keys stored, %v", n, err)
		}

		// A second provider on the same database (another server of the
		// cluster) signs with the same key and publishes the same set.
		second := e.serve(e.newProvider(e.issuer))
		if got := kidsAt(t, second); !slices.Equal(got, []string{kid3, kid2}) {
			t.Fatalf("second server's JWKS %v, want [%s %s]", got, kid3, kid2)
		}
	})
}

func keyID(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	header, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid, Alg string
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Alg != "RS256" {
		t.Fatalf("header %s: %v", b, err)
	}
	return h.Kid
}

// TestNewValidates: New refuses bad configuration.
func TestNewValidates(t *testing.T) {
	e := newEnv(t, dbtest.OpenSQLite)
	ctx := context.Background()
	good := identity.Config{
		Issuer: "http://localhost:5556", DB: e.identityDB, Accounts: e.accounts, CryptoKey: sha256.Sum256([]byte("test secret key")),
		Clients: []identity.Client{{ID: "c", Secret: "0123456789abcdef", RedirectURIs: []string{"http://c/cb"}}},
	}
	if _, err := identity.New(ctx, good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(c *identity.Config)
	}{
		{"no issuer", func(c *identity.Config) { c.Issuer = "" }},
		{"relative issuer", func(c *identity.Config) { c.Issuer = "/idp" }},
		{"issuer with query", func(c *identity.Config) { c.Issuer = "http://x/?a=b" }},
		{"no db", func(c *identity.Config) { c.DB = nil }},
		{"no accounts", func(c *identity.Config) { c.Accounts = nil }},
		{"no crypto key", func(c *identity.Config) { c.CryptoKey = [32]byte{} }},
		{"no clients", func(c *identity.Config) { c.Clients = nil }},
		{"short secret", func(c *identity.Config) {
			c.Clients = []identity.Client{{ID: "c", Secret: "short", RedirectURIs: []string{"http://c/cb"}}}
		}},
		{"no redirect", func(c *identity.Config) { c.Clients = []identity.Client{{ID: "c", Secret: "0123456789abcdef"}} }},
		{"bad redirect", func(c *identity.Config) {
			c.Clients = []identity.Client{{ID: "c", Secret: "0123456789abcdef", RedirectURIs: []string{"c/cb"}}}
		}},
		{"duplicate client", func(c *identity.Config) { c.Clients = append(c.Clients, c.Clients[0]) }},
		{"negative lifetime", func(c *identity.Config) { c.SignInLifetime = -time.Second }},
	} {
		cfg := good
		tc.change(&cfg)
		if _, err := identity.New(ctx, cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}

	// A provider whose crypto key differs cannot open the stored keys:
	// start-up fails instead of signing with an unknown key.
	other := good
	other.CryptoKey = sha256.Sum256([]byte("another key"))
	if _, err := identity.New(ctx, other); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Fatalf("New with another crypto key = %v", err)
	}
}

// TestDiscovery: what RPs read from the discovery document.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, dbtest.OpenSQLite)
	connect := e.rp(connectID, connectURL)
	var d map[string]any
	if err := connect.provider.Claims(&d); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"issuer":                                e.issuer,
		"authorization_endpoint":                e.issuer + identity.AuthorizePath,
		"token_endpoint":                        e.issuer + identity.TokenPath,
		"userinfo_endpoint":                     e.issuer + identity.UserinfoPath,
		"end_session_endpoint":                  e.issuer + identity.EndSessionPath,
		"jwks_uri":                              e.issuer + identity.KeysPath,
		"code_challenge_methods_supported":      []any{"S256"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
	} {
		if got := d[key]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	methods, _ := d["token_endpoint_auth_methods_supported"].([]any)
	if !slices.Contains(methods, any("client_secret_basic")) || !slices.Contains(methods, any("client_secret_post")) {
		t.Errorf("token_endpoint_auth_methods_supported = %v", methods)
	}
	claims, _ := d["claims_supported"].([]any)
	if !slices.Contains(claims, any("sid")) || !slices.Contains(claims, any("preferred_username")) {
		t.Errorf("claims_supported = %v", claims)
	}
}
