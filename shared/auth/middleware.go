package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/httpx"
)

type ctxKey int

const (
	identifiedKey ctxKey = iota // Middleware has run for this request
	userKey                     // User
	sessionKey                  // *session, when signed in through the browser
	badKeyKey                   // true when an API key was presented and refused
)

// CSRFFieldName and CSRFHeader carry the session's CSRF token in form posts
// and in script or API requests that use the session cookie.
const (
	CSRFFieldName = "csrf_token"
	CSRFHeader    = "X-CSRF-Token"
)

// Middleware identifies the caller and stores the user for CurrentUser:
// from an API key in the Authorization header ("Key …", "Bearer …", or
// Basic auth with user __token__), else from the session cookie. It never
// refuses a request for lack of identity; Require does that. It fails a
// request only when the directory or database fails.
//
// Add it with r.Use before adding routes: gin copies middleware into a
// route when the route is added. Require and CSRF also identify the caller
// when Middleware has not, so a route registered too early is refused, not
// opened.
func (a *Auth) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) { a.identifyOnce(c) }
}

// identifyOnce runs identify the first time it is called for a request and
// reports whether the request may go on.
func (a *Auth) identifyOnce(c *gin.Context) bool {
	if _, done := c.Get(identifiedKey); done {
		return !c.IsAborted()
	}
	c.Set(identifiedKey, true)
	if err := a.identify(c); err != nil {
		c.Error(httpx.Internal(err))
		c.Abort()
		return false
	}
	return true
}

func (a *Auth) identify(c *gin.Context) error {
	authz, hasAuthz := c.Request.Header["Authorization"]
	var cookie string
	if ck, err := c.Request.Cookie(a.sessionCk); err == nil {
		cookie = ck.Value
	}
	id, err := a.resolve(c.Request.Context(), first(authz), hasAuthz, cookie)
	if err != nil {
		return err
	}
	switch {
	case id.badKey:
		c.Set(badKeyKey, true)
	case id.clearCookie:
		a.clearCookie(c, a.sessionCk, "/") // expired or unknown: stop sending it
	case id.endWhy != "":
		return a.endSession(c, *id.session, id.endWhy)
	case id.signedIn:
		c.Set(userKey, id.user)
		if id.session != nil {
			c.Set(sessionKey, id.session)
		}
	}
	return nil
}

func first(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// identity is who a request comes from, and what identifying it asks to
// be done (a cookie to clear, a session to end).
type identity struct {
	user        User
	signedIn    bool
	session     *session // a browser session, nil for API keys
	badKey      bool     // an API key was presented and refused
	clearCookie bool     // the session cookie names no session
	endWhy      string   // the session may no longer be used: end it
}

// resolve identifies a caller from its Authorization header (when it sent
// one: hasAuthz) or else its session cookie, changing nothing. It fails
// only when the directory or database fails.
func (a *Auth) resolve(ctx context.Context, authz string, hasAuthz bool, cookie string) (identity, error) {
	if key, ok := parseAuthorization(authz); hasAuthz && ok {
		u, err := a.dir.AuthenticateKey(ctx, key, a.cfg.Product)
		switch {
		case errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrUnknownUser):
			return identity{badKey: true}, nil
		case err != nil:
			return identity{}, fmt.Errorf("authenticate API key: %w", err)
		case u.Locked: // the directory should have refused; do not rely on it
			return identity{badKey: true}, nil
		}
		return identity{user: u, signedIn: true}, nil
	}
	if cookie == "" {
		return identity{}, nil
	}
	s, ok, err := a.lookupSession(ctx, cookie)
	if err != nil {
		return identity{}, err
	}
	if !ok {
		return identity{clearCookie: true}, nil
	}
	u, err := a.dir.User(ctx, s.userID)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return identity{session: &s, endWhy: "user no longer exists"}, nil
	case err != nil:
		return identity{}, fmt.Errorf("read session user: %w", err)
	case u.Locked:
		return identity{session: &s, endWhy: "user is locked"}, nil
	}
	if a.cfg.Embedded && s.sid != "" {
		// Signing out at the embedded provider (from any product) ends the
		// sign-in there; this is how every product learns of it, without
		// the provider having to reach each product.
		active, err := a.dir.SignInActive(ctx, s.sid)
		if err != nil {
			return identity{}, fmt.Errorf("check sign-in: %w", err)
		}
		if !active {
			return identity{session: &s, endWhy: "signed out at the provider"}, nil
		}
	}
	return identity{user: u, signedIn: true, session: &s}, nil
}

// IdentifyFast identifies the caller of a request on the server's fast
// path (httpx.HandleFast) as Middleware does. ok is false when the request
// should go the normal way instead: identifying it would change something
// (an unknown cookie to clear, a session to end), its API key was refused,
// or the database failed — the routes then do it and answer.
func (a *Auth) IdentifyFast(ctx context.Context, r *h1.Request) (u User, signedIn, ok bool) {
	authz, hasAuthz := r.Header("Authorization")
	cookie, _ := r.Cookie(a.sessionCk)
	id, err := a.resolve(ctx, authz, hasAuthz, cookie)
	if err != nil || id.badKey || id.clearCookie || id.endWhy != "" {
		return User{}, false, false
	}
	return id.user, id.signedIn, true
}

// endSession deletes a session that may no longer be used; the request
// goes on anonymously.
func (a *Auth) endSession(c *gin.Context, s session, why string) error {
	if err := a.deleteSession(c.Request.Context(), s.tokenHash); err != nil {
		return err
	}
	a.clearCookie(c, a.sessionCk, "/")
	a.log.Info("session ended", "user_id", s.userID, "reason", why)
	return nil
}

// CurrentUser returns the user Middleware identified; ok is false for
// anonymous requests.
func CurrentUser(c *gin.Context) (User, bool) {
	v, ok := c.Get(userKey)
	if !ok {
		return User{}, false
	}
	u, ok := v.(User)
	return u, ok
}

// sessionOf returns the browser session of the request, nil when the caller
// is anonymous or used an API key.
func sessionOf(c *gin.Context) *session {
	v, _ := c.Get(sessionKey)
	s, _ := v.(*session)
	return s
}

// Require refuses callers without at least minRole (RoleViewer,
// RolePublisher or RoleAdmin). Anonymous browsers asking for a page are
// sent to sign in and back; other anonymous callers get a 401, callers
// whose API key was refused always do. It panics on an unknown role, which
// is a programming error caught when routes are set up.
func (a *Auth) Require(minRole string) gin.HandlerFunc {
	rank := roleRank(minRole)
	if rank == 0 {
		panic(fmt.Sprintf("auth.Require: unknown role %q", minRole))
	}
	return func(c *gin.Context) {
		if !a.identifyOnce(c) {
			return
		}
		u, ok := CurrentUser(c)
		switch {
		case !ok && c.GetBool(badKeyKey):
			c.Error(httpx.Errorf(http.StatusUnauthorized, "the API key is not valid: unknown, expired, revoked or for another product"))
			c.Abort()
		case !ok && c.Request.Method == http.MethodGet && wantsHTML(c.Request):
			c.Redirect(http.StatusFound, LoginPath+"?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
		case !ok:
			c.Error(httpx.Errorf(http.StatusUnauthorized, "sign in required"))
			c.Abort()
		case roleRank(u.Role) < rank:
			c.Error(httpx.Errorf(http.StatusForbidden, "requires the %s role", minRole))
			c.Abort()
		}
	}
}

// CSRF refuses POST, PUT, PATCH and DELETE requests made with the session
// cookie unless they carry the session's CSRF token in the form field
// csrf_token or the X-CSRF-Token header. The cookie is SameSite=Lax, which
// already keeps it off most cross-site posts; the token also covers
// same-site attackers (another product's page on the same host) and old
// browsers. Requests with an API key are exempt: a forged request cannot
// carry the header.
func (a *Auth) CSRF() gin.HandlerFunc {
	return func(c *gin.Context) {
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
			return
		}
		if !a.identifyOnce(c) {
			return
		}
		s := sessionOf(c)
		if s == nil {
			return // nothing a forged request could act as
		}
		// The header first: reading the form would consume a body the
		// handler needs (an upload sent by a script with the header).
		token := c.GetHeader(CSRFHeader)
		if token == "" {
			token = c.PostForm(CSRFFieldName)
		}
		if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) != 1 {
			c.Error(httpx.Errorf(http.StatusForbidden, "the form is out of date or came from another site (CSRF token missing or wrong); reload the page and try again"))
			c.Abort()
		}
	}
}

// CSRFToken is the session's CSRF token, "" without a browser session.
func CSRFToken(c *gin.Context) string {
	if s := sessionOf(c); s != nil {
		return s.csrf
	}
	return ""
}

// CSRFField is the hidden input every product form posting with the
// session cookie must contain; empty without a browser session.
func CSRFField(c *gin.Context) template.HTML {
	t := CSRFToken(c)
	if t == "" {
		return ""
	}
	return template.HTML(`<input type="hidden" name="` + CSRFFieldName + `" value="` + html.EscapeString(t) + `">`)
}

// maxKeyLen bounds what is sent to the directory from outside.
const maxKeyLen = 512

// parseAuthorization extracts an API key from an Authorization header in
// one of the forms Posit's clients send: "Key <key>" (Connect),
// "Bearer <key>", or "Basic base64(__token__:<key>)" (Package Manager, as
// pip and renv send it). Schemes are case-insensitive (RFC 9110). ok is
// false for anything else, including Basic auth for other users, which
// some other part of a product may handle.
func parseAuthorization(h string) (key string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "key", "bearer":
		key = rest
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found || user != "__token__" {
			return "", false
		}
		key = pass
	default:
		return "", false
	}
	if !validKey(key) {
		return "", false
	}
	return key, true
}

// validKey accepts printable ASCII without spaces: every key format in use
// fits, and nothing else reaches the directory or the logs.
func validKey(key string) bool {
	if key == "" || len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return false
		}
	}
	return true
}

// wantsHTML is true for browsers: they list text/html in Accept ahead of
// JSON. It matches the rule httpx uses to pick an error page over JSON.
func wantsHTML(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	h := strings.Index(accept, "text/html")
	if h < 0 {
		return false
	}
	j := strings.Index(accept, "application/json")
	return j < 0 || h < j
}
