package keycloaktest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/e2e/keycloaktest"
)

// unusedURL is a loopback URL nothing listens on: a redirect URI that
// Login must report without requesting.
func unusedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

type idClaims struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	EmailVerified     bool     `json:"email_verified"`
	Name              string   `json:"name"`
	Groups            []string `json:"groups"`
	Nonce             string   `json:"nonce"`
}

// TestKeycloak signs in against a real Keycloak: once as a bare
// authorization code flow with PKCE, once through a relying party that runs.
func TestKeycloak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A relying party that runs, as the suite will: /login → Keycloak →
	// /callback → /me. Its URL must be known before Keycloak starts.
	rp := &relyingParty{}
	rpServer := httptest.NewServer(rp)
	defer rpServer.Close()

	bare := keycloaktest.Client{
		ID:           "atrium-bare",
		Secret:       "bare-secret",
		RedirectURIs: []string{unusedURL(t) + "/__auth__/callback"},
		RequirePKCE:  true,
	}
	kc := keycloaktest.Start(t, keycloaktest.Realm{
		Name: "atrium",
		Clients: []keycloaktest.Client{bare, {
			ID:                     "atrium-rp",
			Secret:                 "rp-secret",
			RedirectURIs:           []string{rpServer.URL + "/callback"},
			PostLogoutRedirectURIs: []string{rpServer.URL + "/"},
		}},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice-pw", Email: "alice@example.test", FirstName: "Alice", LastName: "Admin", Groups: []string{"atrium-admins"}},
			{Username: "bob", Password: "bob-pw"},
		},
		Groups: []string{"atrium-viewers"},
	})

	provider, err := oidc.NewProvider(ctx, kc.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}

	t.Run("AuthorizationCodePKCE", func(t *testing.T) {
		conf := oauth2.Config{
			ClientID:     bare.ID,
			ClientSecret: bare.Secret,
			Endpoint:     provider.Endpoint(),
			RedirectURL:  bare.RedirectURIs[0],
			Scopes:       []string{oidc.ScopeOpenID, "profile", "email"},
		}
		verifier := oauth2.GenerateVerifier()
		state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
		browser := newBrowser(t)

		redirect := kc.Login(t, browser, authURL, "alice", "alice-pw")
		if got := redirect.Scheme + "://" + redirect.Host + redirect.Path; got != conf.RedirectURL {
			t.Fatalf("redirected to %s, want %s", redirect, conf.RedirectURL)
		}
		q := redirect.Query()
		if q.Get("state") != state {
			t.Errorf("state %q, want %q", q.Get("state"), state)
		}
		code := q.Get("code")
		if code == "" {
			t.Fatalf("no code in %s", redirect)
		}

		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		if rawID == "" {
			t.Fatal("token response has no id_token")
		}
		// Checks the signature against the JWKS, the issuer and the audience.
		idt, err := provider.Verifier(&oidc.Config{ClientID: bare.ID}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("verify ID token: %v", err)
		}
		if idt.Issuer != kc.Issuer || !slices.Contains(idt.Audience, bare.ID) {
			t.Errorf("ID token iss %q aud %v", idt.Issuer, idt.Audience)
		}
		var c idClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.PreferredUsername != "alice" {
			t.Errorf("preferred_username %q, want alice", c.PreferredUsername)
		}
		if !slices.Contains(c.Groups, "atrium-admins") {
			t.Errorf("groups %v, want atrium-admins", c.Groups)
		}
		if c.Nonce != nonce || c.Email != "alice@example.test" || !c.EmailVerified || c.Name != "Alice Admin" {
			t.Errorf("claims %+v", c)
		}

		// Userinfo carries the groups too.
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var uic idClaims
		if err := ui.Claims(&uic); err != nil || !slices.Contains(uic.Groups, "atrium-admins") {
			t.Errorf("userinfo groups %v (%v)", uic.Groups, err)
		}

		// The session cookie signs alice in again without a form.
		state2 := oauth2.GenerateVerifier()
		again := kc.Login(t, browser, conf.AuthCodeURL(state2, oauth2.S256ChallengeOption(verifier)), "", "")
		if again.Query().Get("code") == "" || again.Query().Get("state") != state2 {
			t.Errorf("second sign-in redirected to %s", again)
		}

		// RequirePKCE: a request without a code challenge is refused.
		noPKCE := kc.Login(t, newBrowser(t), conf.AuthCodeURL(state), "alice", "alice-pw")
		if noPKCE.Query().Get("error") == "" || noPKCE.Query().Get("code") != "" {
			t.Errorf("authorization without PKCE redirected to %s, want an error", noPKCE)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		conf := oauth2.Config{ClientID: bare.ID, Endpoint: provider.Endpoint(), RedirectURL: bare.RedirectURIs[0], Scopes: []string{oidc.ScopeOpenID}}
		browser := newBrowser(t)
		page, err := browser.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp := keycloaktest.SubmitLogin(t, browser, page, "alice", "not-her-password")
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Invalid username or password") {
			t.Errorf("wrong password: %s, page without the error message", resp.Status)
		}
	})

	t.Run("RelyingParty", func(t *testing.T) {
		rp.conf = oauth2.Config{
			ClientID:     "atrium-rp",
			ClientSecret: "rp-secret",
			Endpoint:     provider.Endpoint(),
			RedirectURL:  rpServer.URL + "/callback",
			Scopes:       []string{oidc.ScopeOpenID, "profile"},
		}
		rp.verifier = provider.Verifier(&oidc.Config{ClientID: "atrium-rp"})

		browser := newBrowser(t)
		page, err := browser.Get(rpServer.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp := keycloaktest.SubmitLogin(t, browser, page, "bob", "bob-pw")
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/me" || strings.TrimSpace(string(body)) != "bob []" {
			t.Fatalf("after login: %s %s %q", resp.Status, resp.Request.URL, body)
		}
	})

	t.Run("Admin", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, kc.AdminURL+"/groups", nil)
		req.Header.Set("Authorization", "Bearer "+kc.AdminToken(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var groups []struct{ Name string }
		if err := json.NewDecoder(resp.Body).Decode(&groups); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/groups: %s %v", kc.AdminURL, resp.Status, err)
		}
		var names []string
		for _, g := range groups {
			names = append(names, g.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"atrium-admins", "atrium-viewers"}) {
			t.Errorf("groups %v", names)
		}
	})
}

// relyingParty is the smallest OpenID relying party: /login starts the code
// flow, /callback finishes it and keeps the user in a cookie, /me shows it.
type relyingParty struct {
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func (rp *relyingParty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		state := oauth2.GenerateVerifier()
		http.SetCookie(w, &http.Cookie{Name: "state", Value: state, Path: "/"})
		http.Redirect(w, r, rp.conf.AuthCodeURL(state), http.StatusFound)
	case "/callback":
		st, err := r.Cookie("state")
		if err != nil || r.FormValue("state") != st.Value {
			http.Error(w, "bad state", http.StatusBadRequest)
			return
		}
		tok, err := rp.conf.Exchange(r.Context(), r.FormValue("code"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := rp.verifier.Verify(r.Context(), raw)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var c idClaims
		idt.Claims(&c)
		http.SetCookie(w, &http.Cookie{Name: "user", Value: fmt.Sprintf("%s_%s", c.PreferredUsername, strings.Join(c.Groups, ",")), Path: "/"})
		http.Redirect(w, r, "/me", http.StatusFound)
	case "/me":
		u, err := r.Cookie("user")
		if err != nil {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		name, groups, _ := strings.Cut(u.Value, "_")
		fmt.Fprintf(w, "%s [%s]\n", name, groups)
	default:
		http.NotFound(w, r)
	}
}

// TestRealmJSON checks the generated realm without a Keycloak.
func TestRealmJSON(t *testing.T) {
	b, err := keycloaktest.Realm{
		Name:    "atrium",
		Clients: []keycloaktest.Client{{ID: "c", Secret: "s", RedirectURIs: []string{"http://x/cb"}, PostLogoutRedirectURIs: []string{"http://x/", "http://y/"}}},
		Users:   []keycloaktest.User{{Username: "u", Password: "p", Groups: []string{"g2", "g1"}}},
		Groups:  []string{"g1"},
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Realm  string
		Groups []struct{ Name, Path string }
		Users  []struct {
			Email, FirstName, LastName string
			EmailVerified, Enabled     bool
			Groups                     []string
		}
		Clients []struct {
			Secret          string
			PublicClient    bool
			Attributes      map[string]string
			ProtocolMappers []struct {
				ProtocolMapper string
				Config         map[string]string
			}
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Path != "/g1" || rep.Groups[1].Path != "/g2" {
		t.Errorf("groups %+v", rep.Groups)
	}
	u := rep.Users[0]
	if u.Email != "u@example.test" || u.FirstName != "u" || u.LastName == "" || !u.EmailVerified || !u.Enabled || !slices.Equal(u.Groups, []string{"/g2", "/g1"}) {
		t.Errorf("user %+v", u)
	}
	c := rep.Clients[0]
	if c.Secret != "s" || c.PublicClient || c.Attributes["post.logout.redirect.uris"] != "http://x/##http://y/" {
		t.Errorf("client %+v", c)
	}
	if m := c.ProtocolMappers[0]; m.ProtocolMapper != "oidc-group-membership-mapper" || m.Config["claim.name"] != "groups" || m.Config["full.path"] != "false" || m.Config["id.token.claim"] != "true" {
		t.Errorf("mapper %+v", m)
	}

	for _, bad := range []keycloaktest.Realm{
		{},
		{Name: "master"},
		{Name: "a", Clients: []keycloaktest.Client{{ID: "c", RedirectURIs: []string{"http://x"}}}},
		{Name: "a", Users: []keycloaktest.User{{Username: "u"}}},
		{Name: "a", Groups: []string{"a/b"}},
	} {
		if _, err := bad.JSON(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
