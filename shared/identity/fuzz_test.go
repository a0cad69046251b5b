package identity_test

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/identity"
)

// FuzzLogin posts arbitrary bodies and cookies to the login endpoint: it
// must never fail with a 5xx or panic, and must never sign anybody in
// without the right password.
func FuzzLogin(f *testing.F) {
	h, loginURL := newEngine(f, "http://idp.test")
	id := loginURL.Query().Get("authRequestID")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, loginURL.RequestURI(), nil))
	cookie := rec.Header().Get("Set-Cookie")
	csrf := between(rec.Body.String(), `name="csrf" value="`, `"`)
	if csrf == "" || cookie == "" {
		f.Fatalf("login page: %d, cookie %q\n%s", rec.Code, cookie, rec.Body)
	}
	cookie, _, _ = strings.Cut(cookie, ";")

	good := url.Values{"authRequestID": {id}, "csrf": {csrf}, "username": {"bob"}, "password": {"wrong password"}}
	f.Add(good.Encode(), cookie)
	f.Add(good.Encode()+"&username=alice", cookie)
	f.Add("authRequestID="+id+"&csrf="+csrf+"&username=%ff&password=x", cookie)
	f.Add("username=bob&password=", "")
	f.Add("%zz", cookie)
	f.Add(strings.Repeat("a=b&", 1000), identity.CSRFCookie+"=x; "+identity.SessionCookie+"=y")
	f.Fuzz(func(t *testing.T, body, cookies string) {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", cookies)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q cookies %q\n%s", rec.Code, body, cookies, rec.Body)
		}
		form, _ := url.ParseQuery(body)
		if rec.Code == http.StatusSeeOther && form.Get("password") != password {
			t.Fatalf("signed in without the password: body %q", body)
		}
	})
}

// newEngine serves a provider (SQLite databases in a temp dir, user bob)
// on an httpx engine called directly, without a listener, and returns the
// login URL of a fresh auth request.
func newEngine(tb testing.TB, issuer string) (http.Handler, *url.URL) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	adb, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(dir, "accounts.db"), Schema: "accounts", Migrations: accounts.Migrations})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { adb.Close() })
	idb, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(dir, "identity.db"), Schema: "identity", Migrations: identity.Migrations})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { idb.Close() })
	acc := accounts.OpenDB(adb, accounts.WithBcryptCost(bcrypt.MinCost))
	if _, err := acc.AddUser(ctx, accounts.NewUser{Username: "bob", Password: password}); err != nil {
		tb.Fatal(err)
	}
	p, err := identity.New(ctx, identity.Config{
		Issuer: issuer, DB: idb, Accounts: acc, CryptoKey: sha256.Sum256([]byte("k")),
		Clients: []identity.Client{{ID: connectID, Secret: secretOf(connectID), RedirectURIs: []string{connectURL + callbackPath}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // httpx wants one; requests go to the engine directly
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := httpx.New(httpx.Config{Name: "identity", Listener: ln})
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close(); ln.Close() })
	p.Register(srv.Engine())
	h := srv.Engine()

	q := url.Values{"client_id": {connectID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {connectURL + callbackPath},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil))
	loginURL, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loginURL.Query().Get("authRequestID") == "" || !strings.HasPrefix(loginURL.String(), issuer+identity.LoginPath) {
		tb.Fatalf("authorize: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	return h, loginURL
}

// TestCookies: the provider's cookies are HttpOnly, SameSite=Lax, Path=/,
// and Secure exactly when the issuer is https.
func TestCookies(t *testing.T) {
	for _, issuer := range []string{"http://idp.test", "https://idp.test"} {
		h, loginURL := newEngine(t, issuer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, loginURL.RequestURI(), nil))
		csrfCookie := cookieNamed(rec.Result().Cookies(), identity.CSRFCookie)
		csrf := between(rec.Body.String(), `name="csrf" value="`, `"`)
		if csrfCookie == nil || csrf == "" {
			t.Fatalf("%s: login page without CSRF cookie or token", issuer)
		}
		form := url.Values{"authRequestID": {loginURL.Query().Get("authRequestID")}, "csrf": {csrf}, "username": {"bob"}, "password": {password}}
		req := httptest.NewRequest(http.MethodPost, identity.LoginPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(csrfCookie)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), issuer+identity.CallbackPath+"?id=") {
			t.Fatalf("%s: login: %d to %q", issuer, rec.Code, rec.Header().Get("Location"))
		}
		session := cookieNamed(rec.Result().Cookies(), identity.SessionCookie)
		for _, c := range []*http.Cookie{csrfCookie, session} {
			if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != strings.HasPrefix(issuer, "https:") {
				t.Errorf("%s: cookie %v", issuer, c)
			}
		}
		if session != nil && session.MaxAge < int((12*time.Hour-time.Minute).Seconds()) {
			t.Errorf("%s: session cookie lasts %ds, want the 12h sign-in lifetime", issuer, session.MaxAge)
		}
	}
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
