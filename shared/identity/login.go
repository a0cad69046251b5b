package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/ui"
)

// Cookie names. Both are HttpOnly, SameSite=Lax, Path=/, and Secure when
// the issuer is https.
const (
	// SessionCookie holds the provider sign-in token (accounts.SignIn.Token):
	// while it is valid, further authorizations complete without a form.
	SessionCookie = "atrium_idp_session"
	// CSRFCookie holds the random value the login form's token is derived
	// from, so a form posted from another site is refused.
	CSRFCookie = "atrium_idp_csrf"
)

// Messages the login page shows.
const (
	msgWrongPassword = "Wrong username or password."
	msgLocked        = "This account is locked."
	msgFormExpired   = "The sign-in form expired. Please try again."
	msgGone          = "This sign-in request has expired or is not valid. Go back to the application and sign in again."
)

// Form field limits: generous for people, small enough that junk costs
// nothing.
const (
	maxUsernameField = 256
	maxPasswordField = 1024
	maxIDField       = 64
	maxCSRFField     = 128
)

var loginBody = template.Must(template.New("login").Parse(`<h1>Sign in</h1>
{{if .Client}}<p class="lead">to continue to {{.Client}}</p>{{end}}
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}" style="display:grid;gap:.6rem;max-width:22rem">
<input type="hidden" name="authRequestID" value="{{.AuthRequestID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" required {{if not .Username}}autofocus{{end}} value="{{.Username}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required {{if .Username}}autofocus{{end}}>
<button type="submit">Sign in</button>
</form>`))

var signedOutBody = template.Must(template.New("signed-out").Parse(`<h1>You are signed out.</h1>
<p class="lead">You are signed out of every Atrium product in this browser.</p>`))

// loginForm is what POST /login sends.
type loginForm struct {
	AuthRequestID string
	Username      string
	Password      string
	CSRF          string
}

// parseLoginForm validates the posted fields. It is the one parser of
// outside input here, so it is strict about size and encoding and fuzzed.
func parseLoginForm(form url.Values) (loginForm, error) {
	if !utf8.ValidString(form.Get("username")) || !utf8.ValidString(form.Get("password")) {
		return loginForm{}, errors.New("username and password must be UTF-8")
	}
	f := loginForm{
		AuthRequestID: form.Get("authRequestID"),
		Username:      strings.ToLower(strings.TrimSpace(form.Get("username"))),
		Password:      form.Get("password"),
		CSRF:          form.Get("csrf"),
	}
	switch {
	case f.AuthRequestID == "" || len(f.AuthRequestID) > maxIDField:
		return loginForm{}, errors.New("the form has no valid authRequestID")
	case len(f.Username) > maxUsernameField || len(f.Password) > maxPasswordField || len(f.CSRF) > maxCSRFField:
		return loginForm{}, errors.New("a form field is too long")
	}
	return f, nil
}

func noStore(c *gin.Context) {
	// The login page must not be cached (it carries a CSRF token) nor be
	// framed by another site (clickjacking the password form).
	c.Header("Cache-Control", "no-store")
	c.Header("X-Frame-Options", "DENY")
	c.Header("Content-Security-Policy", "frame-ancestors 'none'")
}

// loginPage is GET /login?authRequestID=…: complete the request at once
// for a browser that is signed in (single sign-on), else show the form.
func (p *Provider) loginPage(c *gin.Context) {
	noStore(c)
	ctx := c.Request.Context()
	ar, err := p.store.authRequest(ctx, c.Query("authRequestID"))
	if err != nil {
		c.Error(p.gone(err))
		return
	}
	if !ar.hasPrompt(oidc.PromptLogin) && !ar.hasPrompt(oidc.PromptSelectAccount) {
		si, u, ok := p.currentSignIn(c)
		// max_age=0 asks for a fresh authentication, like prompt=login.
		if ok && (ar.maxAge == nil || (*ar.maxAge > 0 && p.now().Sub(si.CreatedAt) <= *ar.maxAge)) {
			p.complete(c, ar, u, si, http.StatusFound)
			return
		}
	}
	if ar.hasPrompt(oidc.PromptNone) {
		// The product asked not to show anything; tell it sign-in is needed.
		op.AuthRequestError(c.Writer, c.Request, ar, oidc.ErrLoginRequired(), p.op)
		return
	}
	p.renderForm(c, http.StatusOK, ar, ar.loginHint, "")
}

// login is POST /login.
func (p *Provider) login(c *gin.Context) {
	noStore(c)
	ctx := c.Request.Context()
	if err := c.Request.ParseForm(); err != nil {
		c.Error(httpx.BadRequest("the sign-in form could not be read"))
		return
	}
	f, err := parseLoginForm(c.Request.PostForm)
	if err != nil {
		c.Error(httpx.BadRequest("%s", err.Error()))
		return
	}
	ar, err := p.store.authRequest(ctx, f.AuthRequestID)
	if err != nil {
		c.Error(p.gone(err))
		return
	}
	if !p.csrfOK(c, f.CSRF) {
		p.renderForm(c, http.StatusForbidden, ar, f.Username, msgFormExpired)
		return
	}
	userKey, ipKey := "user:"+f.Username, "ip:"+c.ClientIP()
	if wait, blocked := p.limiter.blocked(userKey, ipKey); blocked {
		mins := int(math.Ceil(wait.Minutes()))
		unit := "minutes"
		if mins == 1 {
			unit = "minute"
		}
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		p.log.Warn("sign-in rate limited", "user", f.Username, "ip", c.ClientIP())
		p.renderForm(c, http.StatusTooManyRequests, ar, f.Username, fmt.Sprintf("Too many sign-in attempts; try again in %d %s.", mins, unit))
		return
	}
	u, err := p.accounts.CheckPassword(ctx, f.Username, f.Password)
	switch {
	case errors.Is(err, accounts.ErrBadCredentials):
		p.limiter.fail(userKey, ipKey)
		p.log.Info("sign-in refused: wrong username or password", "user", f.Username, "ip", c.ClientIP())
		p.renderForm(c, http.StatusUnauthorized, ar, f.Username, msgWrongPassword)
		return
	case errors.Is(err, accounts.ErrLocked):
		p.log.Info("sign-in refused: account locked", "user", f.Username, "ip", c.ClientIP())
		p.renderForm(c, http.StatusForbidden, ar, f.Username, msgLocked)
		return
	case err != nil:
		c.Error(httpx.Internal(err))
		return
	}
	p.limiter.reset(userKey)

	si, err := p.accounts.CreateSignIn(ctx, u.ID, p.cfg.SignInLifetime)
	if errors.Is(err, accounts.ErrLocked) { // locked a moment ago
		p.renderForm(c, http.StatusForbidden, ar, f.Username, msgLocked)
		return
	}
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	// The browser's previous sign-in, if any, ends: a browser has one
	// provider session, and products holding the old sid then sign in
	// again silently with the new one (or stop, if a different person now
	// uses this browser).
	if old, err := c.Cookie(SessionCookie); err == nil && old != "" {
		if prev, _, err := p.accounts.SignInByToken(ctx, old); err == nil && prev.ID != si.ID {
			if err := p.accounts.EndSignIn(ctx, prev.ID); err != nil {
				p.log.Warn("previous sign-in not ended", "sid", prev.ID, "err", err)
			}
		}
	}
	p.setCookie(c, SessionCookie, si.Token, si.ExpiresAt)
	p.log.Info("signed in", "user", u.Username, "sid", si.ID, "client", ar.clientID, "ip", c.ClientIP())
	p.complete(c, ar, u, si, http.StatusSeeOther)
}

// complete marks the auth request as authenticated and sends the browser
// to op's callback, which issues the code.
func (p *Provider) complete(c *gin.Context, ar *authRequest, u accounts.User, si accounts.SignIn, status int) {
	ctx := c.Request.Context()
	if err := p.store.completeAuthRequest(ctx, ar.id, u.ID, si.ID, si.CreatedAt); err != nil {
		c.Error(p.gone(err))
		return
	}
	c.Redirect(status, op.AuthCallbackURL(p.op)(op.ContextWithIssuer(ctx, p.issuer), ar.id))
}

// currentSignIn returns the browser's valid provider sign-in.
func (p *Provider) currentSignIn(c *gin.Context) (accounts.SignIn, accounts.User, bool) {
	token, err := c.Cookie(SessionCookie)
	if err != nil || token == "" {
		return accounts.SignIn{}, accounts.User{}, false
	}
	si, u, err := p.accounts.SignInByToken(c.Request.Context(), token)
	if err != nil {
		if !errors.Is(err, accounts.ErrNotFound) && !errors.Is(err, accounts.ErrExpired) && !errors.Is(err, accounts.ErrLocked) {
			p.log.Error("read sign-in", "err", err)
		}
		return accounts.SignIn{}, accounts.User{}, false
	}
	return si, u, true
}

func (p *Provider) gone(err error) *httpx.Error {
	if errors.Is(err, errAuthRequestGone) {
		return &httpx.Error{Status: http.StatusBadRequest, Msg: msgGone, Err: err}
	}
	return httpx.Internal(err)
}

func (p *Provider) renderForm(c *gin.Context, status int, ar *authRequest, username, msg string) {
	clientName := ""
	if cl := p.store.clients[ar.clientID]; cl != nil {
		clientName = cl.name
	}
	body, err := ui.Fragment(loginBody, map[string]any{
		"Action": p.basePath + "/login", "AuthRequestID": ar.id, "CSRF": p.csrfToken(c),
		"Username": username, "Error": msg, "Client": clientName,
	})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	ui.Render(c, status, ui.Page{Product: "Identity", Title: "Sign in", Nav: p.cfg.Nav, Body: body})
}

func (p *Provider) signedOut(c *gin.Context) {
	noStore(c)
	body, err := ui.Fragment(signedOutBody, nil)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	ui.Render(c, http.StatusOK, ui.Page{Product: "Identity", Title: "Signed out", Nav: p.cfg.Nav, Body: body})
}

// csrfToken returns the form token for this browser, setting the CSRF
// cookie first if it has none. The token is an HMAC of the cookie value,
// so another site can neither read nor forge it (the cookie is HttpOnly and
// the HMAC key is secret).
func (p *Provider) csrfToken(c *gin.Context) string {
	v, err := c.Cookie(CSRFCookie)
	if err != nil || len(v) < 32 || len(v) > 64 {
		var b [32]byte
		rand.Read(b[:])
		v = base64.RawURLEncoding.EncodeToString(b[:])
		p.setCookie(c, CSRFCookie, v, time.Time{})
		// Later reads in this request (re-rendering) see the new value.
		c.Request.AddCookie(&http.Cookie{Name: CSRFCookie, Value: v})
	}
	return p.csrfMAC(v)
}

func (p *Provider) csrfMAC(v string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte("login-csrf:" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Provider) csrfOK(c *gin.Context, token string) bool {
	v, err := c.Cookie(CSRFCookie)
	if err != nil || v == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(p.csrfMAC(v)), []byte(token))
}

// setCookie sets one of the provider's cookies; a zero expiry makes a
// browser-session cookie.
func (p *Provider) setCookie(c *gin.Context, name, value string, expires time.Time) {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode}
	if !expires.IsZero() {
		ck.Expires = expires
		ck.MaxAge = int(expires.Sub(p.now()).Seconds())
		if ck.MaxAge <= 0 {
			ck.MaxAge = -1
		}
	}
	http.SetCookie(c.Writer, ck)
}

// clearSessionCookie removes the sign-in cookie from the browser.
func (p *Provider) clearSessionCookie(h http.Header) {
	ck := &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1}
	h.Add("Set-Cookie", ck.String())
}

// endSignInByToken ends the sign-in whose token the browser sent.
func (p *Provider) endSignInByToken(ctx context.Context, token string) {
	if token == "" {
		return
	}
	si, _, err := p.accounts.SignInByToken(ctx, token)
	if err != nil {
		return // already ended, expired, or its user is locked (which ended it)
	}
	if err := p.accounts.EndSignIn(ctx, si.ID); err != nil {
		p.log.Warn("sign-in not ended", "sid", si.ID, "err", err)
		return
	}
	p.log.Info("signed out", "sid", si.ID, "user_id", si.UserID)
}
