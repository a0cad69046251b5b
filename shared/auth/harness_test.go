package auth_test

import (
	"github.com/atrium-suite/atrium/shared/testutil"

	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/auth/authtest"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/ui"
)

// clock is the tests' shared time: the product, the provider and the
// directory all read it, so expiry is tested by moving it, not by waiting.
type clock = testutil.Clock

func newClock() *clock { return testutil.NewClock(time.Now()) }

type opener = func(t *testing.T, migrations fs.FS) *db.DB

// suite is what products share: one provider, one directory, one clock.
type suite struct {
	clock *clock
	dir   *fakeDirectory
	op    *authtest.Provider
}

func newSuite(t *testing.T, opts authtest.Options) *suite {
	s := &suite{clock: newClock()}
	s.dir = newFakeDirectory(s.clock.Now)
	opts.Now = s.clock.Now
	s.op = authtest.New(t, opts)
	return s
}

// product is one product server with auth in front of a few routes.
type product struct {
	*suite
	a      *auth.Auth
	db     *db.DB
	url    string
	things atomic.Int32           // POST /api/things that got through
	logs   *testutil.LockedBuffer // what auth logs, so tests can check why it refused
}

type productOpts struct {
	name            string // default "connect"
	external        bool
	adminGroups     []string
	publisherGroups []string
	publicURL       string // default: the server's address
}

const clientSecret = "s3cret&/=" // characters that need encoding in Basic auth

func (s *suite) start(t *testing.T, open opener, o productOpts) *product {
	t.Helper()
	if o.name == "" {
		o.name = "connect"
	}
	srv, err := httpx.New(httpx.Config{Name: o.name, Addr: "127.0.0.1:0",
		RenderHTMLError: ui.ErrorRenderer(o.name, nil)})
	if err != nil {
		t.Fatal(err)
	}
	p := &product{suite: s, db: open(t, fstest.MapFS{}), url: "http://" + srv.Addr().String(), logs: &testutil.LockedBuffer{}}
	publicURL := p.url
	if o.publicURL != "" {
		publicURL = o.publicURL
	}
	p.a, err = auth.New(context.Background(), auth.Config{
		Product: o.name, DisplayName: strings.ToUpper(o.name[:1]) + o.name[1:], PublicURL: publicURL,
		Issuer: s.op.Issuer(), Embedded: !o.external, ClientID: "atrium-" + o.name, ClientSecret: clientSecret,
		GroupsClaim: "groups", AdminGroups: o.adminGroups, PublisherGroups: o.publisherGroups,
		SessionLifetime: time.Hour, DB: p.db, Directory: s.dir, Now: s.clock.Now,
		Logger: slog.New(slog.NewTextHandler(p.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.op.AddClient("atrium-"+o.name, clientSecret, p.a.RedirectURL())

	r := srv.Engine()
	r.Use(p.a.Middleware(), p.a.CSRF())
	p.a.Register(r)
	r.GET("/private", p.a.Require(auth.RoleViewer), func(c *gin.Context) {
		u, _ := auth.CurrentUser(c)
		c.String(http.StatusOK, "hello "+u.Username)
	})
	r.GET("/publish", p.a.Require(auth.RolePublisher), func(c *gin.Context) { c.String(http.StatusOK, "publisher page") })
	r.POST("/api/things", p.a.Require(auth.RoleViewer), func(c *gin.Context) {
		p.things.Add(1)
		c.String(http.StatusOK, "made")
	})
	r.GET("/page", func(c *gin.Context) {
		ui.Render(c, http.StatusOK, ui.Page{Product: "Test", Title: "Page", User: p.a.UserBadge(c), Body: "<p>body</p>"})
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return p
}

// sessions counts the rows in auth_sessions.
func (p *product) sessions(t *testing.T) int {
	t.Helper()
	var n int
	if err := p.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM auth_sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// browser is a cookie jar and a client that does not follow redirects, so
// every step of a sign-in can be looked at.
type browser struct {
	t   *testing.T
	jar *cookiejar.Jar
	c   *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body string
}

// do sends a request as a browser (Accept: text/html) unless hdr says
// otherwise. A non-nil form is posted.
func (b *browser) do(method, u string, form url.Values, hdr map[string]string) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, string(data)}
}

func (b *browser) get(u string) response { return b.do(http.MethodGet, u, nil, nil) }

// api sends a request as an API client (Accept: application/json).
func (b *browser) api(method, u string, hdr map[string]string) response {
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Accept"] = "application/json"
	return b.do(method, u, nil, hdr)
}

func expectStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Request.Method, r.Request.URL, r.StatusCode, want, r.body)
	}
}

// startLogin asks the product to sign in and returns the provider's
// authorization URL it redirected to.
func (b *browser) startLogin(p *product, next string) string {
	b.t.Helper()
	r := b.get(p.url + "/__auth__/login?next=" + url.QueryEscape(next))
	expectStatus(b.t, r, http.StatusFound)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, p.op.Issuer()+"/authorize?") {
		b.t.Fatalf("login redirected to %q, want the provider", loc)
	}
	return loc
}

// authorize visits the provider and returns the callback URL it sends the
// browser back to.
func (b *browser) authorize(authURL string) string {
	b.t.Helper()
	r := b.get(authURL)
	expectStatus(b.t, r, http.StatusFound)
	return r.Header.Get("Location")
}

// login signs in as whoever the provider is set to sign in and returns the
// final redirect.
func (b *browser) login(p *product, next string) response {
	b.t.Helper()
	r := b.get(b.authorize(b.startLogin(p, next)))
	expectStatus(b.t, r, http.StatusFound)
	return r
}

func (b *browser) me(p *product) response {
	return b.api(http.MethodGet, p.url+"/__auth__/me", nil)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf reads the CSRF token from a page of the product.
func (b *browser) csrf(p *product) string {
	b.t.Helper()
	r := b.get(p.url + "/page")
	m := csrfInput.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("no CSRF field on the page: %s", r.body)
	}
	return m[1]
}

// forEachDialect runs fn on SQLite and PostgreSQL.
func forEachDialect(t *testing.T, fn func(t *testing.T, open opener)) {
	dbtest.ForEachDialect(t, func(t *testing.T, open func(*testing.T, fs.FS) *db.DB) { fn(t, open) })
}
