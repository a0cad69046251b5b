package auth_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/auth/authtest"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

// signedIn starts a product and signs in a fresh user with the given role.
func signedIn(t *testing.T, open opener, role string) (*product, *browser, auth.User) {
	t.Helper()
	s := newSuite(t, authtest.Options{})
	p := s.start(t, open, productOpts{})
	u := s.dir.add("alice", role)
	s.op.SetUser(authtest.User{Subject: u.ID, SID: "sid-alice"})
	b := newBrowser(t)
	b.login(p, "/")
	expectStatus(t, b.me(p), http.StatusOK)
	return p, b, u
}

func TestSessionEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(p *product, u auth.User)
	}{
		{"expired", func(p *product, u auth.User) { p.clock.Advance(time.Hour) }},
		{"user locked", func(p *product, u auth.User) { p.dir.SetLocked(context.Background(), u.Username, true) }},
		{"user deleted", func(p *product, u auth.User) { p.dir.remove(u.ID) }},
		{"signed out at the provider", func(p *product, u auth.User) { p.dir.setSignIn("sid-alice", false) }},
	}
	forEachDialect(t, func(t *testing.T, open opener) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, b, u := signedIn(t, open, auth.RoleViewer)
				p.clock.Advance(59 * time.Minute)
				expectStatus(t, b.me(p), http.StatusOK) // not yet
				tt.end(p, u)
				r := b.me(p)
				expectStatus(t, r, http.StatusUnauthorized)
				if n := p.sessions(t); n != 0 {
					t.Errorf("%d sessions left", n)
				}
				if c := r.Cookies(); len(c) != 1 || c[0].Name != "atrium_connect_session" || c[0].MaxAge >= 0 {
					t.Errorf("session cookie not cleared: %v", c)
				}
				r = b.get(p.url + "/private")
				expectStatus(t, r, http.StatusFound)
			})
		}
	})
}

func TestLogout(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		p, b, _ := signedIn(t, open, auth.RoleViewer)

		// Without the CSRF token nothing happens.
		r := b.do(http.MethodPost, p.url+"/__auth__/logout", url.Values{}, nil)
		expectStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.body, "CSRF token missing or wrong") {
			t.Errorf("page: %s", r.body)
		}
		r = b.do(http.MethodPost, p.url+"/__auth__/logout", url.Values{"csrf_token": {"wrong"}}, nil)
		expectStatus(t, r, http.StatusForbidden)
		expectStatus(t, b.me(p), http.StatusOK)

		// The ID token is needed for the hint below.
		var idToken string
		if err := p.db.QueryRowContext(context.Background(), `SELECT id_token FROM auth_sessions`).Scan(&idToken); err != nil {
			t.Fatal(err)
		}
		r = b.do(http.MethodPost, p.url+"/__auth__/logout", url.Values{"csrf_token": {b.csrf(p)}}, nil)
		expectStatus(t, r, http.StatusSeeOther)
		loc := must(url.Parse(r.Header.Get("Location")))
		q := loc.Query()
		if loc.Scheme+"://"+loc.Host+loc.Path != p.op.Issuer()+"/end_session" || q.Get("id_token_hint") != idToken ||
			q.Get("client_id") != "atrium-connect" || q.Get("post_logout_redirect_uri") != p.url+"/" {
			t.Errorf("logout redirected to %s", loc)
		}
		expectStatus(t, b.me(p), http.StatusUnauthorized)
		if n := p.sessions(t); n != 0 {
			t.Errorf("%d sessions left", n)
		}
	})

	t.Run("provider without end_session", func(t *testing.T) {
		s := newSuite(t, authtest.Options{NoEndSession: true})
		p := s.start(t, dbtest.OpenSQLite, productOpts{})
		u := s.dir.add("alice", auth.RoleViewer)
		s.op.SetUser(authtest.User{Subject: u.ID})
		b := newBrowser(t)
		b.login(p, "/")
		r := b.do(http.MethodPost, p.url+"/__auth__/logout", url.Values{"csrf_token": {b.csrf(p)}}, nil)
		expectStatus(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != "/" {
			t.Errorf("logout redirected to %q", loc)
		}
		expectStatus(t, b.me(p), http.StatusUnauthorized)
	})
}

// TestSuiteWideSignOut runs two products on one host, as `atrium up` does:
// their cookies live in one jar, and signing out of one signs out of both.
func TestSuiteWideSignOut(t *testing.T) {
	var s *suite
	s = newSuite(t, authtest.Options{OnEndSession: func(q url.Values) {
		// What the embedded provider does: end the sign-in the hint names.
		s.dir.setSignIn("sid-shared", false)
	}})
	connect := s.start(t, dbtest.OpenSQLite, productOpts{name: "connect"})
	workbench := s.start(t, dbtest.OpenSQLite, productOpts{name: "workbench"})
	u := s.dir.add("alice", auth.RoleViewer)
	s.op.SetUser(authtest.User{Subject: u.ID, SID: "sid-shared"})
	b := newBrowser(t)
	b.login(connect, "/")
	b.login(workbench, "/")
	expectStatus(t, b.me(connect), http.StatusOK)
	expectStatus(t, b.me(workbench), http.StatusOK)

	r := b.do(http.MethodPost, connect.url+"/__auth__/logout", url.Values{"csrf_token": {b.csrf(connect)}}, nil)
	expectStatus(t, r, http.StatusSeeOther)
	r = b.get(r.Header.Get("Location")) // the browser follows to the provider
	expectStatus(t, r, http.StatusFound)
	if r.Header.Get("Location") != connect.url+"/" {
		t.Errorf("provider sent the browser to %q", r.Header.Get("Location"))
	}
	expectStatus(t, b.me(connect), http.StatusUnauthorized)
	expectStatus(t, b.me(workbench), http.StatusUnauthorized)
	if n := workbench.sessions(t); n != 0 {
		t.Errorf("workbench kept %d sessions", n)
	}
}

func TestAPIKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		s := newSuite(t, authtest.Options{})
		p := s.start(t, open, productOpts{})
		u := s.dir.add("alice", auth.RolePublisher)
		ctx := context.Background()
		key, _, _ := s.dir.CreateAPIKey(ctx, u.ID, "ci", "connect", nil)
		other, _, _ := s.dir.CreateAPIKey(ctx, u.ID, "pm", "packagemanager", nil)
		expiry := s.clock.Now().Add(time.Hour)
		expiring, _, _ := s.dir.CreateAPIKey(ctx, u.ID, "short", "connect", &expiry)
		basic := func(user, pass string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		b := newBrowser(t)

		for _, h := range []string{"Key " + key, "Bearer " + key, basic("__token__", key), "key  " + key} {
			r := b.api(http.MethodGet, p.url+"/publish", map[string]string{"Authorization": h})
			expectStatus(t, r, http.StatusOK)
			// No CSRF token is needed: a forged request cannot set the header.
			r = b.api(http.MethodPost, p.url+"/api/things", map[string]string{"Authorization": h})
			expectStatus(t, r, http.StatusOK)
		}
		if n := p.things.Load(); n != 4 {
			t.Errorf("%d things made", n)
		}
		// A browser sent to sign in would be wrong for a bad key: 401.
		for name, h := range map[string]string{
			"wrong key":     "Key atr_wrong",
			"other product": "Key " + other,
			"wrong basic":   basic("__token__", "atr_wrong"),
		} {
			r := b.do(http.MethodGet, p.url+"/private", nil, map[string]string{"Authorization": h})
			expectStatus(t, r, http.StatusUnauthorized)
			if !strings.Contains(r.body, "the API key is not valid") {
				t.Errorf("%s: %s", name, r.body)
			}
		}
		// Basic auth for someone else is not a key; the request is anonymous.
		r := b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": basic("alice", "pw")})
		expectStatus(t, r, http.StatusUnauthorized)
		if !strings.Contains(r.body, "sign in required") {
			t.Errorf("basic for a user: %s", r.body)
		}

		expectStatus(t, b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": "Key " + expiring}), http.StatusOK)
		s.clock.Advance(time.Hour)
		expectStatus(t, b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": "Key " + expiring}), http.StatusUnauthorized)

		// Locking the owner stops the key at once.
		s.dir.SetLocked(ctx, "alice", true)
		expectStatus(t, b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": "Key " + key}), http.StatusUnauthorized)
		if n := p.sessions(t); n != 0 {
			t.Errorf("API keys created %d sessions", n)
		}
	})
}

func TestCSRF(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		p, b, _ := signedIn(t, open, auth.RoleViewer)
		token := b.csrf(p)
		tests := []struct {
			name   string
			form   url.Values
			header map[string]string
			status int
		}{
			{"no token", url.Values{"x": {"1"}}, nil, http.StatusForbidden},
			{"wrong token", url.Values{"csrf_token": {"nope"}}, nil, http.StatusForbidden},
			{"wrong header", url.Values{"csrf_token": {token}}, map[string]string{"X-CSRF-Token": "nope"}, http.StatusForbidden},
			{"form field", url.Values{"csrf_token": {token}}, nil, http.StatusOK},
			{"header", url.Values{}, map[string]string{"X-CSRF-Token": token}, http.StatusOK},
		}
		made := int32(0)
		for _, tt := range tests {
			r := b.do(http.MethodPost, p.url+"/api/things", tt.form, tt.header)
			if r.StatusCode != tt.status {
				t.Errorf("%s: status %d, want %d", tt.name, r.StatusCode, tt.status)
			}
			if tt.status == http.StatusOK {
				made++
			}
		}
		if n := p.things.Load(); n != made {
			t.Errorf("%d things made, want %d", n, made)
		}
		// Anonymous posts have no session to forge; Require refuses them.
		expectStatus(t, newBrowser(t).api(http.MethodPost, p.url+"/api/things", nil), http.StatusUnauthorized)
	})
}

var newKeyRe = regexp.MustCompile(`<pre>(atr_[A-Z0-9]+)</pre>`)

func TestKeysPage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		p, b, u := signedIn(t, open, auth.RoleViewer)
		r := b.get(p.url + "/__auth__/keys")
		expectStatus(t, r, http.StatusOK)
		if !strings.Contains(r.body, "You have no keys for Connect") {
			t.Errorf("keys page: %s", r.body)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
		}
		token := b.csrf(p)

		expectStatus(t, b.do(http.MethodPost, p.url+"/__auth__/keys", url.Values{"name": {"ci"}}, nil), http.StatusForbidden)
		for _, bad := range []url.Values{
			{"name": {""}},
			{"name": {strings.Repeat("n", 101)}},
			{"name": {"ci"}, "expires_days": {"0"}},
			{"name": {"ci"}, "expires_days": {"soon"}},
		} {
			bad.Set("csrf_token", token)
			expectStatus(t, b.do(http.MethodPost, p.url+"/__auth__/keys", bad, nil), http.StatusBadRequest)
		}
		if n := p.dir.keyCount(u.ID); n != 0 {
			t.Fatalf("%d keys created by refused requests", n)
		}

		r = b.do(http.MethodPost, p.url+"/__auth__/keys", url.Values{"csrf_token": {token}, "name": {"deploy <script>"}, "expires_days": {"30"}}, nil)
		expectStatus(t, r, http.StatusOK)
		m := newKeyRe.FindStringSubmatch(r.body)
		if m == nil || !strings.Contains(r.body, "shown only this once") {
			t.Fatalf("new key not shown: %s", r.body)
		}
		key := m[1]
		if strings.Contains(r.body, "<script>") {
			t.Error("key name not escaped")
		}
		// The key works, for this product.
		r = b.api(http.MethodGet, p.url+"/__auth__/me", map[string]string{"Authorization": "Key " + key})
		expectStatus(t, r, http.StatusOK)

		// Keys for every product are listed too, keys for another are not.
		p.dir.CreateAPIKey(context.Background(), u.ID, "everywhere-key", "", nil)
		p.dir.CreateAPIKey(context.Background(), u.ID, "pm-only-key", "packagemanager", nil)
		r = b.get(p.url + "/__auth__/keys")
		if !strings.Contains(r.body, `everywhere-key <span class="muted">(every product)</span>`) || strings.Contains(r.body, "pm-only-key") {
			t.Errorf("keys of other products: %s", r.body)
		}
		if strings.Contains(r.body, key) || !strings.Contains(r.body, key[:8]+"…") {
			t.Errorf("the list must show the prefix only: %s", r.body)
		}
		if want := p.clock.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02"); !strings.Contains(r.body, want) {
			t.Errorf("expiry %s not shown", want)
		}

		// An API key cannot mint keys.
		r = b.api(http.MethodPost, p.url+"/__auth__/keys", map[string]string{"Authorization": "Key " + key})
		expectStatus(t, r, http.StatusForbidden)

		revoke := regexp.MustCompile(`(?s)<code>` + regexp.QuoteMeta(key[:8]) + `…</code>.*?action="(/__auth__/keys/[^"]+/revoke)"`).
			FindStringSubmatch(b.get(p.url + "/__auth__/keys").body)
		if revoke == nil {
			t.Fatal("no revoke form")
		}
		expectStatus(t, b.do(http.MethodPost, p.url+revoke[1], url.Values{}, nil), http.StatusForbidden)
		expectStatus(t, b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": "Key " + key}), http.StatusOK)
		expectStatus(t, b.do(http.MethodPost, p.url+"/__auth__/keys/nope/revoke", url.Values{"csrf_token": {token}}, nil), http.StatusNotFound)
		r = b.do(http.MethodPost, p.url+revoke[1], url.Values{"csrf_token": {token}}, nil)
		expectStatus(t, r, http.StatusSeeOther)
		expectStatus(t, b.api(http.MethodGet, p.url+"/private", map[string]string{"Authorization": "Key " + key}), http.StatusUnauthorized)

		// Anonymous browsers are sent to sign in.
		r = newBrowser(t).get(p.url + "/__auth__/keys")
		expectStatus(t, r, http.StatusFound)
	})
}

func TestAdminUsers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open opener) {
		s := newSuite(t, authtest.Options{})
		p := s.start(t, open, productOpts{})
		admin := s.dir.add("root", auth.RoleAdmin)
		bob := s.dir.add("bob", auth.RoleViewer)

		// Bob, a viewer, may not see the page.
		bobB := newBrowser(t)
		s.op.SetUser(authtest.User{Subject: bob.ID})
		bobB.login(p, "/")
		r := bobB.get(p.url + "/__auth__/admin/users")
		expectStatus(t, r, http.StatusForbidden)
		if !strings.Contains(r.body, "requires the admin role") {
			t.Errorf("page: %s", r.body)
		}
		expectStatus(t, bobB.do(http.MethodPost, p.url+"/__auth__/admin/users",
			url.Values{"csrf_token": {bobB.csrf(p)}, "action": {"role"}, "username": {"bob"}, "role": {"admin"}}, nil), http.StatusForbidden)

		b := newBrowser(t)
		s.op.SetUser(authtest.User{Subject: admin.ID})
		b.login(p, "/")
		r = b.get(p.url + "/__auth__/admin/users")
		expectStatus(t, r, http.StatusOK)
		for _, want := range []string{"bob Example", "root@example.com", "Add a user", `name="csrf_token"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("users page lacks %q", want)
			}
		}
		token := b.csrf(p)
		post := func(form url.Values) response {
			return b.do(http.MethodPost, p.url+"/__auth__/admin/users", form, nil)
		}
		role := func(name string) string {
			u, _ := s.dir.get(name)
			return u.Role
		}

		refused := []struct {
			name   string
			form   url.Values
			status int
			msg    string
		}{
			{"no CSRF token", url.Values{"action": {"role"}, "username": {"bob"}, "role": {"publisher"}}, http.StatusForbidden, "CSRF"},
			{"bad role", url.Values{"action": {"role"}, "username": {"bob"}, "role": {"owner"}}, http.StatusBadRequest, `role &#34;owner&#34; is not one of viewer, publisher, admin`},
			{"no username", url.Values{"action": {"role"}, "role": {"publisher"}}, http.StatusBadRequest, "a username is required"},
			{"unknown user", url.Values{"action": {"role"}, "username": {"carol"}, "role": {"publisher"}}, http.StatusNotFound, `no user named &#34;carol&#34;`},
			{"demote self", url.Values{"action": {"role"}, "username": {"root"}, "role": {"viewer"}}, http.StatusBadRequest, "your own admin role"},
			{"lock self", url.Values{"action": {"lock"}, "username": {"root"}}, http.StatusBadRequest, "your own account"},
			{"unknown action", url.Values{"action": {"delete"}, "username": {"bob"}}, http.StatusBadRequest, "unknown action"},
			{"add without password", url.Values{"action": {"add"}, "username": {"carol"}, "role": {"viewer"}}, http.StatusBadRequest, "a password is required"},
			{"add taken username", url.Values{"action": {"add"}, "username": {"bob"}, "password": {"long enough pw"}, "role": {"viewer"}}, http.StatusBadRequest, "username bob is taken"},
			{"add weak password", url.Values{"action": {"add"}, "username": {"carol"}, "password": {"short"}, "role": {"viewer"}}, http.StatusBadRequest, "at least 8 characters"},
		}
		for _, tt := range refused {
			if tt.form.Get("action") != "" && tt.name != "no CSRF token" {
				tt.form.Set("csrf_token", token)
			}
			r := post(tt.form)
			if r.StatusCode != tt.status || !strings.Contains(r.body, tt.msg) {
				t.Errorf("%s: %d, want %d with %q: %s", tt.name, r.StatusCode, tt.status, tt.msg, r.body)
			}
		}
		if role("bob") != auth.RoleViewer || role("root") != auth.RoleAdmin {
			t.Fatalf("refused requests changed roles: bob %s, root %s", role("bob"), role("root"))
		}
		if _, ok := s.dir.get("carol"); ok {
			t.Fatal("refused requests added carol")
		}

		r = post(url.Values{"csrf_token": {token}, "action": {"role"}, "username": {"bob"}, "role": {"publisher"}})
		expectStatus(t, r, http.StatusSeeOther)
		if role("bob") != auth.RolePublisher {
			t.Errorf("bob is %s", role("bob"))
		}
		if r := b.get(p.url + r.Header.Get("Location")); !strings.Contains(r.body, "Role changed.") {
			t.Errorf("no confirmation: %s", r.body)
		}
		expectStatus(t, bobB.get(p.url+"/publish"), http.StatusOK)

		// Locking bob ends his session at once.
		expectStatus(t, post(url.Values{"csrf_token": {token}, "action": {"lock"}, "username": {"bob"}}), http.StatusSeeOther)
		expectStatus(t, bobB.me(p), http.StatusUnauthorized)
		expectStatus(t, post(url.Values{"csrf_token": {token}, "action": {"unlock"}, "username": {"bob"}}), http.StatusSeeOther)
		if u, _ := s.dir.get("bob"); u.Locked {
			t.Error("bob still locked")
		}

		expectStatus(t, post(url.Values{"csrf_token": {token}, "action": {"add"}, "username": {"carol"}, "name": {"Carol"},
			"email": {"carol@example.com"}, "password": {"correct horse"}, "role": {"publisher"}}), http.StatusSeeOther)
		if u, ok := s.dir.get("carol"); !ok || u.Role != auth.RolePublisher || u.Name != "Carol" {
			t.Errorf("carol: %+v", u)
		}
	})
}

func TestAdminUsersExternal(t *testing.T) {
	s := newSuite(t, authtest.Options{})
	p := s.start(t, dbtest.OpenSQLite, productOpts{external: true, adminGroups: []string{"admins"}})
	s.op.SetUser(authtest.User{Subject: "ext-1", Username: "root", Groups: []string{"admins"}})
	b := newBrowser(t)
	b.login(p, "/")
	r := b.get(p.url + "/__auth__/admin/users")
	expectStatus(t, r, http.StatusOK)
	if strings.Contains(r.body, "Add a user") || !strings.Contains(r.body, "they appear here after their first sign-in") ||
		!strings.Contains(r.body, "are set again at each sign-in") {
		t.Errorf("page for an external provider: %s", r.body)
	}
	r = b.do(http.MethodPost, p.url+"/__auth__/admin/users", url.Values{"csrf_token": {b.csrf(p)}, "action": {"add"},
		"username": {"carol"}, "password": {"correct horse"}, "role": {"viewer"}}, nil)
	expectStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(r.body, "add them there") {
		t.Errorf("page: %s", r.body)
	}
}

func TestExternalRoles(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name      string
		admin     []string
		publisher []string
		user      authtest.User
		passed    *string // the role given to UpsertExternal
		role      string  // the role the user ends up with
	}{
		{"admin group", []string{"admins"}, []string{"pubs"}, authtest.User{Groups: []string{"staff", "admins"}}, str("admin"), "admin"},
		{"admin wins over publisher", []string{"admins"}, []string{"pubs"}, authtest.User{Groups: []string{"pubs", "admins"}}, str("admin"), "admin"},
		{"publisher group", []string{"admins"}, []string{"pubs"}, authtest.User{Groups: []string{"pubs"}}, str("publisher"), "publisher"},
		{"no matching group", []string{"admins"}, []string{"pubs"}, authtest.User{Groups: []string{"staff"}}, str("viewer"), "viewer"},
		{"no groups claim", []string{"admins"}, []string{"pubs"}, authtest.User{}, str("viewer"), "viewer"},
		{"groups are case-sensitive", []string{"admins"}, nil, authtest.User{Groups: []string{"Admins"}}, str("viewer"), "viewer"},
		{"only publisher groups configured", nil, []string{"pubs"}, authtest.User{Groups: []string{"pubs"}}, str("publisher"), "publisher"},
		// Without a mapping the directory keeps its role: the user below
		// was made an admin there before this sign-in.
		{"no mapping", nil, nil, authtest.User{Groups: []string{"admins"}}, nil, "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuite(t, authtest.Options{})
			p := s.start(t, dbtest.OpenSQLite, productOpts{external: true, adminGroups: tt.admin, publisherGroups: tt.publisher})
			// A first sign-in creates the user; make them an admin in the
			// directory to see whether the next sign-in keeps that.
			u := tt.user
			u.Subject, u.Username, u.Email = "ext-42", "kc-alice", "alice@corp.example"
			s.op.SetUser(u)
			b := newBrowser(t)
			b.login(p, "/")
			s.dir.SetRole(context.Background(), "kc-alice", auth.RoleAdmin)
			b = newBrowser(t)
			b.login(p, "/")

			up, _ := s.dir.lastUpsert()
			if up.issuer != s.op.Issuer() || up.subject != "ext-42" || up.username != "kc-alice" {
				t.Errorf("upsert %+v", up)
			}
			if (up.role == nil) != (tt.passed == nil) || (up.role != nil && *up.role != *tt.passed) {
				t.Errorf("role passed %v, want %v", deref(up.role), deref(tt.passed))
			}
			r := b.me(p)
			expectStatus(t, r, http.StatusOK)
			if !strings.Contains(r.body, `"role":"`+tt.role+`"`) {
				t.Errorf("me: %s, want role %s", r.body, tt.role)
			}
		})
	}
	t.Run("username falls back to email, then sub", func(t *testing.T) {
		s := newSuite(t, authtest.Options{})
		p := s.start(t, dbtest.OpenSQLite, productOpts{external: true})
		for _, u := range []authtest.User{{Subject: "s1", Email: "e1@example.com"}, {Subject: "s2"}} {
			s.op.SetUser(u)
			newBrowser(t).login(p, "/")
			up, _ := s.dir.lastUpsert()
			if want := u.Email; (want != "" && up.username != want) || (want == "" && up.username != u.Subject) {
				t.Errorf("username %q for %+v", up.username, u)
			}
		}
	})
	t.Run("groups claim as a single string", func(t *testing.T) {
		s := newSuite(t, authtest.Options{})
		p := s.start(t, dbtest.OpenSQLite, productOpts{external: true, adminGroups: []string{"admins"}})
		s.op.SetUser(authtest.User{Subject: "s1", Username: "one"})
		s.op.ModifyClaims(func(c map[string]any) { c["groups"] = "admins" })
		b := newBrowser(t)
		b.login(p, "/")
		if r := b.me(p); !strings.Contains(r.body, `"role":"admin"`) {
			t.Errorf("me: %s", r.body)
		}
	})
}

func TestUserBadge(t *testing.T) {
	s := newSuite(t, authtest.Options{})
	p := s.start(t, dbtest.OpenSQLite, productOpts{})
	r := newBrowser(t).get(p.url + "/page?x=1")
	if !strings.Contains(r.body, `<div class="user"><a href="/__auth__/login?next=%2Fpage%3Fx%3D1">Sign in</a></div>`) {
		t.Errorf("anonymous badge: %s", r.body)
	}
	for _, role := range []string{auth.RoleViewer, auth.RoleAdmin} {
		u := s.dir.add("user-"+role, role)
		s.op.SetUser(authtest.User{Subject: u.ID})
		b := newBrowser(t)
		b.login(p, "/")
		r := b.get(p.url + "/page")
		if !strings.Contains(r.body, "Signed in as <strong>user-"+role+"</strong> ("+role+")") ||
			!strings.Contains(r.body, `action="/__auth__/logout"`) || !strings.Contains(r.body, `href="/__auth__/keys"`) {
			t.Errorf("%s badge: %s", role, r.body)
		}
		if hasAdmin := strings.Contains(r.body, `href="/__auth__/admin/users"`); hasAdmin != (role == auth.RoleAdmin) {
			t.Errorf("%s badge links to admin: %v", role, hasAdmin)
		}
	}
}

func TestSecureCookies(t *testing.T) {
	s := newSuite(t, authtest.Options{})
	p := s.start(t, dbtest.OpenSQLite, productOpts{publicURL: "https://connect.example"})
	r := newBrowser(t).get(p.url + "/__auth__/login")
	expectStatus(t, r, http.StatusFound)
	cs := r.Cookies()
	if len(cs) != 1 || cs[0].Name != "atrium_connect_login" || !cs[0].Secure || !cs[0].HttpOnly ||
		cs[0].SameSite != http.SameSiteLaxMode || cs[0].Path != "/__auth__/" || cs[0].MaxAge != 600 {
		t.Errorf("login cookie %+v", cs)
	}
	if q := must(url.Parse(r.Header.Get("Location"))).Query(); q.Get("redirect_uri") != "https://connect.example/__auth__/callback" {
		t.Errorf("redirect_uri %q", q.Get("redirect_uri"))
	}
}
